// Package storetest is the behavioural suite every store backend passes, so
// the handlers can rely on one contract whatever database runs underneath.
//
// Run checks the store.Store contract and the Locker methods, and works for
// any implementation, in-memory fakes included. RunAtRest adds what only a persistent,
// encrypting backend can show: no token in clear in the database, sealed
// values bound to their row and column, and key rotation.
package storetest

import (
	"crypto/sha256"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// Locker is store.Locker, named here for the suite's helpers.
type Locker = store.Locker

// PerTest returns a function that creates a value the first time it is
// called for a test and returns the same value for later calls with that
// test, forgetting it when the test ends. Backends use it to give each test
// its own database while letting the suite open that database again.
func PerTest[T any](create func(t *testing.T) T) func(t *testing.T) T {
	var (
		mu   sync.Mutex
		vals = map[*testing.T]T{}
	)
	return func(t *testing.T) T {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if v, ok := vals[t]; ok {
			return v
		}
		v := create(t)
		vals[t] = v
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			delete(vals, t)
		})
		return v
	}
}

// Keys returns a keyring whose masters are derived from the given names
// (the first is current), so tests can build the same keyring twice and
// rotate between named keys.
func Keys(t *testing.T, names ...string) *secret.Keyring {
	t.Helper()
	require.NotEmpty(t, names)
	masters := make([][]byte, len(names))
	for i, n := range names {
		sum := sha256.Sum256([]byte("storetest master " + n))
		masters[i] = sum[:]
	}
	k, err := secret.NewKeyring(masters[0], masters[1:]...)
	require.NoError(t, err)
	return k
}

// Run runs the behavioural suite against the stores open returns. open must
// return a ready store on a fresh database the first time it is called for
// a test, and a new store on that same database on every later call with
// the same test (the suite closes a store and opens the data again). open
// should register Close with t.Cleanup; the suite may have closed it first.
// Subtests run in parallel, so open is called concurrently.
//
// The store must implement Locker as well.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) store.Store)
	}{
		{"SavePortal/RoundTrip", testSavePortalRoundTrip},
		{"SavePortal/ResaveOverwritesAndKeepsInstalledAt", testResave},
		{"SavePortal/ReinstallAfterUninstall", testReinstall},
		{"SavePortal/EmptyMemberID", testSavePortalEmptyMemberID},
		{"Portal/NotFound", testPortalNotFound},
		{"UpdatePortalTokens/CompareAndSwap", testUpdatePortalTokens},
		{"UpdatePortalTokens/UninstalledPortal", testUpdatePortalTokensUninstalled},
		{"UpdatePortalTokens/Concurrent", testUpdatePortalTokensConcurrent},
		{"UninstallPortal/WipesTokensAndSessions", testUninstall},
		{"UninstallPortal/RacingCreateSession", testUninstallRacingCreateSession},
		{"UninstallPortal/Clean", testUninstallClean},
		{"UninstallPortal/Idempotent", testUninstallIdempotent},
		{"UninstallPortal/NotFound", testUninstallNotFound},
		{"CreateSession/RoundTrip", testSessionRoundTrip},
		{"CreateSession/Defaults", testSessionDefaults},
		{"CreateSession/PortalNotInstalled", testSessionPortalNotInstalled},
		{"CreateSession/Invalid", testSessionInvalid},
		{"Session/NotFound", testSessionNotFound},
		{"Session/Expired", testSessionExpired},
		{"Session/UninstalledPortal", testSessionUninstalledPortal},
		{"UpdateSessionTokens/CompareAndSwap", testUpdateSessionTokens},
		{"UpdateSessionTokens/Concurrent", testUpdateSessionTokensConcurrent},
		{"DeleteExpiredSessions", testDeleteExpiredSessions},
		{"Reopen", testReopen},
		{"WithPortalLock/Serializes", testPortalLockSerializes},
		{"WithPortalLock/StoreCallsInside", testPortalLockStoreCalls},
		{"WithPortalLock/Errors", testPortalLockErrors},
		{"WithPortalLock/Nested", testLockNested},
		{"WithPortalLock/ContextEnds", testPortalLockContextEnds},
		{"WithSessionLock/Serializes", testSessionLockSerializes},
		{"WithSessionLock/StoreCallsInside", testSessionLockStoreCalls},
		{"WithSessionLock/NotFound", testSessionLockNotFound},
		{"Undo/RoundTrip", testUndoRoundTrip},
		{"Undo/ReplaceAndExpire", testUndoReplaceAndExpire},
		{"Undo/NeedsSession", testUndoNeedsSession},
		{"Undo/TakenOnce", testUndoTakenOnce},
		{"History/AddListDelete", testHistory},
		{"History/DefaultsTime", testHistoryDefaultsTime},
		// What the refresh, rename, fault and uninstall handling rely on.
		{"DeleteSession", testDeleteSession},
		{"UpdatePortalEndpoint/CompareAndSwap", testUpdatePortalEndpoint},
		{"UpdatePortalEndpoint/Concurrent", testUpdatePortalEndpointConcurrent},
		{"FlagPortal", testFlagPortal},
		{"UninstallReport/ReportClearAndList", testUninstallReport},
		{"UninstallReport/ReinstallOrUninstallEndsIt", testUninstallReportEnds},
		{"RecentTokens", testRecentTokens},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// testPing: Ping answers while the database does, and fails once the
// store is closed (what the readiness probe relies on).
func testPing(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	require.NoError(t, s.Ping(t.Context()))
	require.NoError(t, s.Close())
	require.Error(t, s.Ping(t.Context()))
}

// newPortal returns a portal with every caller-set field filled in with
// values distinct per memberID.
func newPortal(memberID string) *store.Portal {
	return &store.Portal{
		MemberID:     memberID,
		Domain:       memberID + ".bitrix24.example",
		RESTEndpoint: "https://" + memberID + ".bitrix24.example/rest/",
		OAuthServer:  "https://oauth.bitrix.example/",
		Scope:        "crm,placement",
		Status:       "L",
		AppTokenHash: "h1:00000000:" + memberID,
		InstalledBy:  7,
		Lang:         "de",
		AppID:        12,
		AppCode:      "b24apps.leadcontacts",
		AccessToken:  secret.New("access-" + memberID),
		RefreshToken: secret.New("refresh-" + memberID),
		TokenExpiry:  time.Now().Add(time.Hour),
	}
}

// newSession returns a session of the portal with every caller-set field
// filled in, expiring in 15 minutes.
func newSession(id, memberID string) *store.Session {
	now := time.Now()
	return &store.Session{
		ID:           id,
		MemberID:     memberID,
		UserID:       42,
		LeadID:       1001,
		LeadTitle:    "Lead «Acme GmbH» <b>&amp; 'quoted'",
		Lang:         "en",
		AccessToken:  secret.New("user-access-" + id),
		RefreshToken: secret.New("user-refresh-" + id),
		CreatedAt:    now,
		ExpiresAt:    now.Add(15 * time.Minute),
	}
}

// openWithPortal opens the test's store with the portal memberID and the
// given sessions of it saved.
func openWithPortal(t *testing.T, open func(t *testing.T) store.Store, memberID string, sessionIDs ...string) store.Store {
	t.Helper()
	s := open(t)
	mustSavePortal(t, s, memberID)
	for _, id := range sessionIDs {
		mustCreateSession(t, s, id, memberID)
	}
	return s
}

func mustSavePortal(t *testing.T, s store.Store, memberID string) *store.Portal {
	t.Helper()
	p := newPortal(memberID)
	require.NoError(t, s.SavePortal(t.Context(), p))
	return p
}

func mustPortal(t *testing.T, s store.Store, memberID string) *store.Portal {
	t.Helper()
	p, err := s.Portal(t.Context(), memberID)
	require.NoError(t, err)
	return p
}

func mustCreateSession(t *testing.T, s store.Store, id, memberID string) *store.Session {
	t.Helper()
	sess := newSession(id, memberID)
	require.NoError(t, s.CreateSession(t.Context(), sess))
	return sess
}

func mustSession(t *testing.T, s store.Store, id string) *store.Session {
	t.Helper()
	sess, err := s.Session(t.Context(), id, time.Now())
	require.NoError(t, err)
	return sess
}

// requireRecord checks every field of a stored record (a Portal or a
// Session): secrets by value, times by instant and UTC as stored, the rest
// by equality. Walking the fields means a field added later is checked
// without anyone remembering to list it here.
func requireRecord[T store.Portal | store.Session](t *testing.T, want, got *T) {
	t.Helper()
	w, g := reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()
	for i := range w.NumField() {
		field := w.Type().Field(i).Name
		switch wv := w.Field(i).Interface().(type) {
		case time.Time:
			requireTime(t, wv, g.Field(i).Interface().(time.Time), field)
		case secret.String:
			require.True(t, wv.Equal(g.Field(i).Interface().(secret.String)), "%s differs", field)
		default:
			require.Equal(t, wv, g.Field(i).Interface(), field)
		}
	}
}

func requireTime(t *testing.T, want, got time.Time, field string) {
	t.Helper()
	require.Truef(t, want.Equal(got), "%s: want %v, got %v", field, want, got)
	if !got.IsZero() {
		require.Equalf(t, time.UTC, got.Location(), "%s is not UTC", field)
	}
}

// requireAbout checks a time the store derived from a caller's time: equal
// up to the storage precision (at worst milliseconds).
func requireAbout(t *testing.T, want, got time.Time, field string) {
	t.Helper()
	require.Falsef(t, got.After(want), "%s: want about %v, got later %v", field, want, got)
	require.Lessf(t, want.Sub(got), time.Millisecond, "%s: want about %v, got %v", field, want, got)
}

// requireBetween checks a time the store took from its clock.
func requireBetween(t *testing.T, before, after, got time.Time, field string) {
	t.Helper()
	require.Falsef(t, got.Before(before.Truncate(time.Millisecond)), "%s %v is before %v", field, got, before)
	require.Falsef(t, got.After(after), "%s %v is after %v", field, got, after)
}

// tick waits long enough that the store's clock, at millisecond precision,
// has moved on.
func tick() { time.Sleep(3 * time.Millisecond) }
