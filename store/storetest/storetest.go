// Package storetest is the behavioural suite every store backend passes, so
// the handlers can rely on one contract whatever database runs underneath.
//
// A backend describes itself in a Backend (how to reach a test's own
// database, how to open a store on it, how to read it raw) and calls Run,
// which checks the store.Store contract and the Locker methods, what the
// store leaves at rest (no token in clear, sealed values bound to their row
// and column, key rotation), and that instances starting together migrate
// once. PostgresURL and FreshSchema give PostgreSQL tests of any package
// their own schema.
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io/fs"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver of FreshSchema's statements
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/testsync"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// Backend describes a store backend to Run.
//
// The suite's SQL (through Raw) assumes the schema both backends share:
// schema_migrations (version), portals (member_id, access_token,
// refresh_token) and sessions (id_lookup = Keyring.Lookup of the raw id,
// access_token, refresh_token).
type Backend struct {
	// Database returns the test's own database (a file path or a
	// connection URL): fresh the first time it is called for a test, the
	// same on later calls with that test. PerTest makes one.
	Database func(t *testing.T) string
	// Open opens a store on a database, migrating it: the backend's Open.
	Open func(ctx context.Context, database string, keys *secret.Keyring) (store.Store, error)
	// Migrations are the backend's migration files.
	Migrations fs.FS
	// Raw opens a plain connection to the test's database, bypassing the
	// store, and closes it when the test ends.
	Raw func(t *testing.T) *sql.DB
	// Dump returns everything the test's database holds at rest: the bytes
	// of its files, or the text of every row of every table.
	Dump func(t *testing.T) []byte
	// SharedLocks says that the Locker methods serialize across Store
	// values on one database (row locks), not only within one Store.
	SharedLocks bool
}

// Run runs every shared suite against the backend: the contract, what is
// at rest, the migrations and, with SharedLocks, locks across instances.
// Subtests run in parallel, each on its own database.
func Run(t *testing.T, b Backend) {
	runContract(t, func(t *testing.T) store.Store { return b.open(t, Keys(t, "current")) })
	t.Run("AtRest", func(t *testing.T) {
		t.Parallel()
		runAtRest(t, b)
	})
	t.Run("MigrationsRunOnce", func(t *testing.T) {
		t.Parallel()
		testMigrationsRunOnce(t, b)
	})
	t.Run("History/RowsWithoutNames", func(t *testing.T) {
		t.Parallel()
		testHistoryRowsWithoutNames(t, b)
	})
	if b.SharedLocks {
		t.Run("LocksAcrossInstances", func(t *testing.T) {
			t.Parallel()
			testLocksAcrossInstances(t, func(t *testing.T) store.Store { return b.open(t, Keys(t, "current")) })
		})
	}
}

// open opens a new store on the test's database and closes it when the
// test ends (the suite may have closed it first).
func (b Backend) open(t *testing.T, keys *secret.Keyring) store.Store {
	t.Helper()
	return MustOpen(t, b.Open, b.Database(t), keys)
}

// exec runs one SQL statement on the test's database, bypassing the
// store, to tamper with rows. Values are inlined as SQL literals.
func (b Backend) exec(t *testing.T, query string) {
	t.Helper()
	_, err := b.Raw(t).ExecContext(t.Context(), query)
	require.NoError(t, err)
}

// MustOpen opens a store with a backend's open function, fails the test
// on error and closes the store when the test ends.
func MustOpen[S interface{ Close() error }](t *testing.T, open func(context.Context, string, *secret.Keyring) (S, error), database string, keys *secret.Keyring) S {
	t.Helper()
	s, err := open(t.Context(), database, keys)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testMigrationsRunOnce: instances starting together on a new database
// migrate it once. Five open at once (so open returns its error rather
// than failing t), then one more on the up-to-date schema.
func testMigrationsRunOnce(t *testing.T, b Backend) {
	steps, err := store.LoadMigrations(b.Migrations)
	require.NoError(t, err)
	require.NotEmpty(t, steps)

	database, keys := b.Database(t), Keys(t, "current")
	open := func(int) error {
		s, err := b.Open(t.Context(), database, keys)
		if err == nil {
			err = s.Close()
		}
		return err
	}
	for _, err := range testsync.AtOnce(5, open) {
		require.NoError(t, err)
	}
	require.NoError(t, open(0))

	var count, highest int
	require.NoError(t, b.Raw(t).QueryRowContext(t.Context(),
		`SELECT count(*), max(version) FROM schema_migrations`).Scan(&count, &highest))
	require.Equal(t, len(steps), count)
	require.Equal(t, steps[len(steps)-1].Version, highest)
}

// PostgresURL returns TEST_DATABASE_URL. Without it the test skips, except
// in CI, which must never skip the PostgreSQL tests.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TEST_DATABASE_URL is not set; CI must run the PostgreSQL tests")
		}
		t.Skip("TEST_DATABASE_URL is not set; skipping PostgreSQL tests " +
			"(e.g. TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable')")
	}
	return u
}

// FreshSchema creates a schema of the test's own at PostgresURL, named
// prefix and random hex, dropped when the test ends, and returns a
// connection string whose search_path points at it: what the app gets in
// production, isolated from tests and packages running in parallel.
func FreshSchema(t testing.TB, prefix string) string {
	t.Helper()
	base := PostgresURL(t)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := pgx.Identifier{prefix + hex.EncodeToString(b)}
	pgExec(t, base, `CREATE SCHEMA `+schema.Sanitize())
	t.Cleanup(func() { pgExec(t, base, `DROP SCHEMA `+schema.Sanitize()+` CASCADE`) })
	return withSearchPath(t, base, schema[0])
}

// pgExec runs one statement on its own short-lived connection.
func pgExec(t testing.TB, dsn, query string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	// Not t.Context(): cleanups run after it is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, query)
	require.NoError(t, err)
}

// withSearchPath adds search_path, which pgx sends as a run-time parameter
// at connection start, to a URL or key=value connection string.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		require.NoError(t, err)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

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

// runContract runs the store.Store and Locker contract against the stores
// open returns: a ready store on a fresh database the first time it is
// called for a test, and a new store on that same database on every later
// call with the same test (the suite closes a store and opens the data
// again). Subtests run in parallel, so open is called concurrently.
func runContract(t *testing.T, open func(t *testing.T) store.Store) {
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
		{"History/Names", testHistoryNames},
		// What the refresh, rename, fault and uninstall handling rely on.
		{"DeleteSession", testDeleteSession},
		{"UpdatePortalEndpoint/CompareAndSwap", testUpdatePortalEndpoint},
		{"UpdatePortalEndpoint/Concurrent", testUpdatePortalEndpointConcurrent},
		{"FlagPortal", testFlagPortal},
		{"UninstallReport/ReportClearAndList", testUninstallReport},
		{"UninstallReport/ReinstallOrUninstallEndsIt", testUninstallReportEnds},
		{"RecentTokens", testRecentTokens},
		{"Ping", testPing},
		{"Bulk/RoundTrip", testBulkRunRoundTrip},
		{"Bulk/Lease", testBulkLease},
		{"Bulk/ClaimSettle", testBulkClaimSettle},
		{"Bulk/Undo", testBulkUndo},
		{"Bulk/Uninstall", testBulkUninstall},
		{"Bulk/UninstallClean", testBulkUninstallClean},
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
		UserName:     "Ана Ли <i>'x'</i>",
		ContactNames: map[int64]string{7: "Jürgen Groß", 1 << 40: "李 伟 \"quoted\""},
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
