package storetest

// The contract of the records: portals (install, tokens, uninstall, the
// reports the handlers keep), frame sessions, and the undo snapshot and
// history of removals.

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/testsync"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

func testSavePortalRoundTrip(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	in := newPortal("m-round-trip")
	// Fields the store owns: whatever the caller passes is replaced.
	in.InstalledAt = time.Unix(1, 0)
	in.UpdatedAt = time.Unix(2, 0)
	in.UninstalledAt = time.Unix(3, 0)
	in.Version = 41

	p := *in
	before := time.Now()
	require.NoError(t, s.SavePortal(t.Context(), &p))
	after := time.Now()

	require.EqualValues(t, 1, p.Version)
	require.True(t, p.Active())
	require.True(t, p.UninstalledAt.IsZero())
	requireBetween(t, before, after, p.InstalledAt, "InstalledAt")
	requireTime(t, p.InstalledAt, p.UpdatedAt, "UpdatedAt of a new row")
	requireAbout(t, in.TokenExpiry, p.TokenExpiry, "TokenExpiry")

	got := mustPortal(t, s, in.MemberID)
	requireRecord(t, &p, got)
	// And against the input, for the caller-set fields.
	want := *in
	want.TokenExpiry, want.InstalledAt, want.UpdatedAt = p.TokenExpiry, p.InstalledAt, p.UpdatedAt
	want.UninstalledAt, want.Version = time.Time{}, 1
	requireRecord(t, &want, got)
}

func testResave(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	first := mustSavePortal(t, s, "m-resave")
	tick()

	// A re-install over an active install: every caller field is replaced.
	second := &store.Portal{
		MemberID:     "m-resave",
		Domain:       "renamed.bitrix24.example",
		RESTEndpoint: "https://renamed.bitrix24.example/rest/",
		OAuthServer:  "https://oauth.bitrix24.example/",
		Scope:        "crm",
		Status:       "F",
		AppTokenHash: "h1:00000000:new",
		InstalledBy:  9,
		Lang:         "ru",
		AppID:        31,
		AppCode:      "local.5f8d9a1b2c3d4e",
		AccessToken:  secret.New("access-new"),
		RefreshToken: secret.New("refresh-new"),
		TokenExpiry:  time.Now().Add(2 * time.Hour),
	}
	before := time.Now()
	require.NoError(t, s.SavePortal(t.Context(), second))
	after := time.Now()

	require.EqualValues(t, 2, second.Version)
	requireTime(t, first.InstalledAt, second.InstalledAt, "InstalledAt kept on re-save")
	requireBetween(t, before, after, second.UpdatedAt, "UpdatedAt")
	require.True(t, second.UpdatedAt.After(first.UpdatedAt))
	requireRecord(t, second, mustPortal(t, s, "m-resave"))

	// Tokens can be cleared by a re-save too.
	third := newPortal("m-resave")
	third.AccessToken, third.RefreshToken, third.TokenExpiry = secret.String{}, secret.String{}, time.Time{}
	require.NoError(t, s.SavePortal(t.Context(), third))
	require.EqualValues(t, 3, third.Version)
	requireRecord(t, third, mustPortal(t, s, "m-resave"))
}

func testReinstall(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	first := mustSavePortal(t, s, "m-reinstall")
	require.NoError(t, s.UninstallPortal(t.Context(), "m-reinstall", true, time.Now()))
	uninstalled := mustPortal(t, s, "m-reinstall")
	tick()

	p := newPortal("m-reinstall")
	p.AccessToken = secret.New("access-after-reinstall")
	before := time.Now()
	require.NoError(t, s.SavePortal(t.Context(), p))
	after := time.Now()

	require.True(t, p.Active())
	require.Equal(t, uninstalled.Version+1, p.Version)
	requireBetween(t, before, after, p.InstalledAt, "InstalledAt restarts after uninstall")
	require.True(t, p.InstalledAt.After(first.InstalledAt))
	got := mustPortal(t, s, "m-reinstall")
	requireRecord(t, p, got)
	require.Equal(t, first.Domain, got.Domain, "clean uninstall blanks, reinstall restores")
}

func testSavePortalEmptyMemberID(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	p := newPortal("")
	require.Error(t, s.SavePortal(t.Context(), p))
	_, err := s.Portal(t.Context(), "")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testPortalNotFound(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-known")
	_, err := s.Portal(t.Context(), "m-unknown")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testUpdatePortalTokens(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustSavePortal(t, s, "m-cas")

	expiry := time.Now().Add(3 * time.Hour)
	before := time.Now()
	require.NoError(t, s.UpdatePortalTokens(ctx, "m-cas", p.Version,
		secret.New("access-2"), secret.New("refresh-2"), expiry))
	after := time.Now()

	got := mustPortal(t, s, "m-cas")
	require.Equal(t, p.Version+1, got.Version)
	require.Equal(t, "access-2", got.AccessToken.Reveal())
	require.Equal(t, "refresh-2", got.RefreshToken.Reveal())
	requireAbout(t, expiry, got.TokenExpiry, "TokenExpiry")
	requireBetween(t, before, after, got.UpdatedAt, "UpdatedAt")
	requireTime(t, p.InstalledAt, got.InstalledAt, "InstalledAt")
	require.Equal(t, p.Domain, got.Domain)

	// A second refresh based on the same read lost the race.
	err := s.UpdatePortalTokens(ctx, "m-cas", p.Version,
		secret.New("access-3"), secret.New("refresh-3"), expiry)
	require.ErrorIs(t, err, store.ErrConflict)
	requireRecord(t, got, mustPortal(t, s, "m-cas"))

	// A version from the future is just as stale.
	err = s.UpdatePortalTokens(ctx, "m-cas", got.Version+5,
		secret.New("access-3"), secret.New("refresh-3"), expiry)
	require.ErrorIs(t, err, store.ErrConflict)
	requireRecord(t, got, mustPortal(t, s, "m-cas"))

	err = s.UpdatePortalTokens(ctx, "m-nobody", 1, secret.New("a"), secret.New("r"), expiry)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// Tokens refreshed by a request that started before an uninstall must not
// bring the wiped tokens back.
func testUpdatePortalTokensUninstalled(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-gone")
	ctx := t.Context()
	require.NoError(t, s.UninstallPortal(ctx, "m-gone", false, time.Now()))
	gone := mustPortal(t, s, "m-gone")

	err := s.UpdatePortalTokens(ctx, "m-gone", gone.Version,
		secret.New("late-access"), secret.New("late-refresh"), time.Now().Add(time.Hour))
	require.ErrorIs(t, err, store.ErrConflict)
	requireRecord(t, gone, mustPortal(t, s, "m-gone"))
}

func testUpdatePortalTokensConcurrent(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	p := mustSavePortal(t, s, "m-race")
	winner := raceCAS(t, func(i int) error {
		return s.UpdatePortalTokens(t.Context(), "m-race", p.Version,
			secret.New(fmt.Sprintf("access-%d", i)), secret.New(fmt.Sprintf("refresh-%d", i)), time.Now())
	})
	got := mustPortal(t, s, "m-race")
	require.Equal(t, p.Version+1, got.Version)
	require.Equal(t, fmt.Sprintf("access-%d", winner), got.AccessToken.Reveal())
	require.Equal(t, fmt.Sprintf("refresh-%d", winner), got.RefreshToken.Reveal())
}

// raceCAS runs update from 20 goroutines at once, all with the same
// expected version, and checks that exactly one wins and every other one
// gets ErrConflict. It returns the winner's index.
func raceCAS(t *testing.T, update func(i int) error) int {
	t.Helper()
	errs := testsync.AtOnce(20, update)

	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two updates with the same version both won")
			winner = i
			continue
		}
		require.ErrorIs(t, err, store.ErrConflict, "goroutine %d", i)
	}
	require.NotEqual(t, -1, winner, "no update won")
	return winner
}

func testUninstall(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	a := mustSavePortal(t, s, "m-a")
	mustSavePortal(t, s, "m-b")
	mustCreateSession(t, s, "sess-a1", "m-a")
	mustCreateSession(t, s, "sess-a2", "m-a")
	b1 := mustCreateSession(t, s, "sess-b1", "m-b")

	at := time.Now().Add(-time.Minute)
	require.NoError(t, s.UninstallPortal(ctx, "m-a", false, at))

	got := mustPortal(t, s, "m-a")
	require.False(t, got.Active())
	requireAbout(t, at, got.UninstalledAt, "UninstalledAt")
	require.Greater(t, got.Version, a.Version)
	require.True(t, got.AccessToken.IsZero(), "access token kept after uninstall")
	require.True(t, got.RefreshToken.IsZero(), "refresh token kept after uninstall")
	require.True(t, got.TokenExpiry.IsZero())
	// Not clean: everything else stays.
	require.Equal(t, a.Domain, got.Domain)
	require.Equal(t, a.RESTEndpoint, got.RESTEndpoint)
	require.Equal(t, a.OAuthServer, got.OAuthServer)
	require.Equal(t, a.Scope, got.Scope)
	require.Equal(t, a.AppTokenHash, got.AppTokenHash)
	requireTime(t, a.InstalledAt, got.InstalledAt, "InstalledAt")

	for _, id := range []string{"sess-a1", "sess-a2"} {
		_, err := s.Session(ctx, id, time.Now())
		require.ErrorIs(t, err, store.ErrNotFound, id)
	}
	requireRecord(t, b1, mustSession(t, s, "sess-b1"))
	requireRecord(t, mustPortal(t, s, "m-b"), mustPortal(t, s, "m-b"))
	require.True(t, mustPortal(t, s, "m-b").Active())

	// The sessions are gone, not merely hidden behind the uninstalled
	// portal: a reinstall does not bring them back, and only the other
	// portal's session is left to expire.
	mustSavePortal(t, s, "m-a")
	_, err := s.Session(ctx, "sess-a1", time.Now())
	require.ErrorIs(t, err, store.ErrNotFound)
	n, err := s.DeleteExpiredSessions(ctx, time.Now().Add(24*time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

// Sessions created while an uninstall runs must not outlive it: either the
// create fails or the uninstall deletes the new session.
func testUninstallRacingCreateSession(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	for round := range 10 {
		memberID := fmt.Sprintf("m-race-%d", round)
		mustSavePortal(t, s, memberID)
		var wg sync.WaitGroup
		errs := make(chan error, 11)
		for i := range 10 {
			wg.Go(func() {
				err := s.CreateSession(ctx, newSession(fmt.Sprintf("sess-%d-%d", round, i), memberID))
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					errs <- err
				}
			})
		}
		wg.Go(func() {
			if err := s.UninstallPortal(ctx, memberID, false, time.Now()); err != nil {
				errs <- err
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	n, err := s.DeleteExpiredSessions(ctx, time.Now().Add(24*time.Hour))
	require.NoError(t, err)
	require.Zero(t, n, "sessions of uninstalled portals left behind")
}

func testUninstallClean(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	p := mustSavePortal(t, s, "m-clean")
	at := time.Now()
	require.NoError(t, s.UninstallPortal(t.Context(), "m-clean", true, at))

	got := mustPortal(t, s, "m-clean")
	want := &store.Portal{
		MemberID:     p.MemberID,
		AppTokenHash: p.AppTokenHash, // a repeated uninstall event must still verify
		InstalledAt:  p.InstalledAt,
		UpdatedAt:    got.UpdatedAt,
		Version:      got.Version,
	}
	want.UninstalledAt = got.UninstalledAt
	requireAbout(t, at, got.UninstalledAt, "UninstalledAt")
	require.Greater(t, got.Version, p.Version)
	requireRecord(t, want, got)
}

func testUninstallIdempotent(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustSavePortal(t, s, "m-twice")
	first := time.Now().Add(-time.Hour)
	require.NoError(t, s.UninstallPortal(ctx, "m-twice", false, first))
	once := mustPortal(t, s, "m-twice")

	// Bitrix24 retries events: a repeat changes nothing, not even Version.
	require.NoError(t, s.UninstallPortal(ctx, "m-twice", false, time.Now()))
	requireRecord(t, once, mustPortal(t, s, "m-twice"))

	// A clean repeat still blanks what the first one kept, and keeps the
	// first uninstall time.
	require.NoError(t, s.UninstallPortal(ctx, "m-twice", true, time.Now()))
	cleaned := mustPortal(t, s, "m-twice")
	requireTime(t, once.UninstalledAt, cleaned.UninstalledAt, "UninstalledAt")
	require.Empty(t, cleaned.Domain)
	require.Equal(t, p.AppTokenHash, cleaned.AppTokenHash)

	require.NoError(t, s.UninstallPortal(ctx, "m-twice", true, time.Now()))
	require.NoError(t, s.UninstallPortal(ctx, "m-twice", false, time.Now()))
	requireRecord(t, cleaned, mustPortal(t, s, "m-twice"))
}

func testUninstallNotFound(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	err := s.UninstallPortal(t.Context(), "m-nobody", true, time.Now())
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.Portal(t.Context(), "m-nobody")
	require.True(t, errors.Is(err, store.ErrNotFound), "uninstall must not create a row")
}

func testUpdatePortalEndpoint(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustSavePortal(t, s, "m-move")
	const to, domain = "https://renamed.bitrix24.example/rest/", "renamed.bitrix24.example"

	require.NoError(t, s.UpdatePortalEndpoint(ctx, "m-move", p.RESTEndpoint, to, domain))
	got := mustPortal(t, s, "m-move")
	require.Equal(t, to, got.RESTEndpoint)
	require.Equal(t, domain, got.Domain)
	require.Equal(t, p.Version+1, got.Version, "a move is a write: compare-and-swaps on the old row lose")
	require.True(t, p.AccessToken.Equal(got.AccessToken), "tokens stay")

	// A late request that still saw the old endpoint cannot move it back.
	err := s.UpdatePortalEndpoint(ctx, "m-move", p.RESTEndpoint, "https://old.bitrix24.example/rest/", "old.bitrix24.example")
	require.ErrorIs(t, err, store.ErrConflict)
	require.Equal(t, to, mustPortal(t, s, "m-move").RESTEndpoint)

	require.ErrorIs(t, s.UpdatePortalEndpoint(ctx, "m-nobody", "a", "b", "c"), store.ErrNotFound)
	require.NoError(t, s.UninstallPortal(ctx, "m-move", false, time.Now()))
	require.ErrorIs(t, s.UpdatePortalEndpoint(ctx, "m-move", to, "https://x.bitrix24.example/rest/", "x"), store.ErrConflict)
}

func testUpdatePortalEndpointConcurrent(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	p := mustSavePortal(t, s, "m-move-race")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.UpdatePortalEndpoint(t.Context(), "m-move-race", p.RESTEndpoint,
				"https://new.bitrix24.example/rest/", "new.bitrix24.example")
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			require.ErrorIs(t, err, store.ErrConflict)
		}
	}
	require.Equal(t, 1, won)
	require.Equal(t, p.Version+1, mustPortal(t, s, "m-move-race").Version)
}

func testFlagPortal(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustSavePortal(t, s, "m-flag")
	require.Empty(t, p.Problem)
	require.Empty(t, mustPortal(t, s, "m-flag").Problem)

	at := time.Now().Add(-time.Minute)
	require.NoError(t, s.FlagPortal(ctx, "m-flag", "PORTAL_DELETED", at))
	got := mustPortal(t, s, "m-flag")
	require.Equal(t, "PORTAL_DELETED", got.Problem)
	requireAbout(t, at, got.ProblemAt, "ProblemAt")
	require.Equal(t, p.Version, got.Version, "a flag is a note, not a versioned write")

	require.NoError(t, s.FlagPortal(ctx, "m-flag", "", time.Now()))
	got = mustPortal(t, s, "m-flag")
	require.Empty(t, got.Problem)
	require.True(t, got.ProblemAt.IsZero())

	// A reinstall clears it too.
	require.NoError(t, s.FlagPortal(ctx, "m-flag", "OVERLOAD_LIMIT", at))
	mustSavePortal(t, s, "m-flag")
	require.Empty(t, mustPortal(t, s, "m-flag").Problem)

	require.ErrorIs(t, s.FlagPortal(ctx, "m-nobody", "PORTAL_DELETED", at), store.ErrNotFound)
}

func testUninstallReport(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-report")
	mustSavePortal(t, s, "m-quiet")
	first := time.Now().Add(-2 * time.Hour)
	require.NoError(t, s.ReportUninstall(t.Context(), "m-report", false, first))
	// A second report keeps the first time, and clean only turns on.
	require.NoError(t, s.ReportUninstall(t.Context(), "m-report", true, time.Now()))
	require.NoError(t, s.ReportUninstall(t.Context(), "m-report", false, time.Now()))
	p := mustPortal(t, s, "m-report")
	requireAbout(t, first, p.UninstallReportedAt, "UninstallReportedAt")
	require.True(t, p.UninstallClean)
	require.True(t, p.Active(), "a report is not an uninstall")
	require.True(t, mustPortal(t, s, "m-quiet").UninstallReportedAt.IsZero())

	got, err := s.ReportedUninstalls(t.Context(), time.Now().Add(-3*time.Hour))
	require.NoError(t, err)
	require.Empty(t, got, "not yet past the grace period")
	got, err = s.ReportedUninstalls(t.Context(), time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, []store.UninstallReport{{MemberID: "m-report", Clean: true}}, got)

	require.NoError(t, s.ClearUninstallReport(t.Context(), "m-report"))
	require.NoError(t, s.ClearUninstallReport(t.Context(), "m-quiet"), "clearing nothing is fine")
	p = mustPortal(t, s, "m-report")
	require.True(t, p.UninstallReportedAt.IsZero())
	require.False(t, p.UninstallClean)
	got, err = s.ReportedUninstalls(t.Context(), time.Now())
	require.NoError(t, err)
	require.Empty(t, got)

	require.ErrorIs(t, s.ReportUninstall(t.Context(), "m-unknown", true, time.Now()), store.ErrNotFound)
}

func testUninstallReportEnds(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-re")
	require.NoError(t, s.ReportUninstall(t.Context(), "m-re", true, time.Now()))
	require.NoError(t, s.SavePortal(t.Context(), newPortal("m-re")))
	p := mustPortal(t, s, "m-re")
	require.True(t, p.UninstallReportedAt.IsZero(), "a reinstall ends the report")
	require.False(t, p.UninstallClean)

	require.NoError(t, s.ReportUninstall(t.Context(), "m-re", false, time.Now()))
	require.NoError(t, s.UninstallPortal(t.Context(), "m-re", false, time.Now()))
	got, err := s.ReportedUninstalls(t.Context(), time.Now())
	require.NoError(t, err)
	require.Empty(t, got, "an uninstalled portal is no longer reported")
	require.ErrorIs(t, s.ReportUninstall(t.Context(), "m-re", true, time.Now()), store.ErrNotFound, "nor can it be")
}

func testRecentTokens(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-tokens")
	mustSavePortal(t, s, "m-other")
	now := time.Now()
	for i, id := range []string{"s-old", "s-mid", "s-new"} {
		sess := newSession(id, "m-tokens")
		sess.CreatedAt = now.Add(time.Duration(i-3) * time.Minute)
		require.NoError(t, s.CreateSession(t.Context(), sess))
	}
	expired := newSession("s-expired", "m-tokens")
	expired.CreatedAt, expired.ExpiresAt = now, now.Add(time.Millisecond)
	require.NoError(t, s.CreateSession(t.Context(), expired))
	require.NoError(t, s.CreateSession(t.Context(), newSession("s-elsewhere", "m-other")))

	got, err := s.RecentTokens(t.Context(), "m-tokens", 2, now.Add(time.Second))
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "user-access-s-new", got[0].Access.Reveal(), "newest first")
	require.Equal(t, "user-refresh-s-new", got[0].Refresh.Reveal())
	require.Equal(t, "user-access-s-mid", got[1].Access.Reveal())
	got, err = s.RecentTokens(t.Context(), "m-none", 2, now)
	require.NoError(t, err)
	require.Empty(t, got)
}

func testSessionRoundTrip(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-sess")
	in := newSession("sess-round-trip", "m-sess")
	in.TokenVersion = 17 // the store starts every session at 1

	sess := *in
	require.NoError(t, s.CreateSession(t.Context(), &sess))
	require.EqualValues(t, 1, sess.TokenVersion)
	requireAbout(t, in.CreatedAt, sess.CreatedAt, "CreatedAt")
	requireAbout(t, in.ExpiresAt, sess.ExpiresAt, "ExpiresAt")

	got := mustSession(t, s, "sess-round-trip")
	requireRecord(t, &sess, got)
	want := *in
	want.TokenVersion, want.CreatedAt, want.ExpiresAt = 1, sess.CreatedAt, sess.ExpiresAt
	requireRecord(t, &want, got)
}

func testSessionDefaults(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-sess")
	sess := newSession("sess-defaults", "m-sess")
	sess.CreatedAt = time.Time{}
	sess.AccessToken, sess.RefreshToken = secret.String{}, secret.String{}
	before := time.Now()
	require.NoError(t, s.CreateSession(t.Context(), sess))
	after := time.Now()
	requireBetween(t, before, after, sess.CreatedAt, "CreatedAt")
	requireRecord(t, sess, mustSession(t, s, "sess-defaults"))
}

func testSessionPortalNotInstalled(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	err := s.CreateSession(ctx, newSession("sess-x", "m-nobody"))
	require.ErrorIs(t, err, store.ErrNotFound)

	mustSavePortal(t, s, "m-gone")
	require.NoError(t, s.UninstallPortal(ctx, "m-gone", false, time.Now()))
	err = s.CreateSession(ctx, newSession("sess-y", "m-gone"))
	require.ErrorIs(t, err, store.ErrNotFound)

	// Nothing was stored that a reinstall could surface.
	mustSavePortal(t, s, "m-gone")
	_, err = s.Session(ctx, "sess-y", time.Now())
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testSessionInvalid(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-sess")
	noID := newSession("", "m-sess")
	require.Error(t, s.CreateSession(t.Context(), noID))

	noExpiry := newSession("sess-no-expiry", "m-sess")
	noExpiry.ExpiresAt = time.Time{}
	require.Error(t, s.CreateSession(t.Context(), noExpiry))

	mustCreateSession(t, s, "sess-dup", "m-sess")
	require.Error(t, s.CreateSession(t.Context(), newSession("sess-dup", "m-sess")), "duplicate id")
}

func testSessionNotFound(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-sess", "sess-known")
	for _, id := range []string{"sess-unknown", "", "SESS-KNOWN", "sess-known "} {
		_, err := s.Session(t.Context(), id, time.Now())
		require.ErrorIs(t, err, store.ErrNotFound, "%q", id)
	}
}

func testSessionExpired(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-sess")
	sess := mustCreateSession(t, s, "sess-expiring", "m-sess")
	exp := sess.ExpiresAt // as stored

	got, err := s.Session(t.Context(), "sess-expiring", exp.Add(-time.Millisecond))
	require.NoError(t, err)
	requireRecord(t, sess, got)
	for _, now := range []time.Time{exp, exp.Add(time.Microsecond), exp.Add(time.Hour)} {
		_, err := s.Session(t.Context(), "sess-expiring", now)
		require.ErrorIs(t, err, store.ErrNotFound, "now = expiry + %v", now.Sub(exp))
	}
}

func testSessionUninstalledPortal(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-sess", "sess-of-gone")
	require.NoError(t, s.UninstallPortal(t.Context(), "m-sess", false, time.Now()))
	_, err := s.Session(t.Context(), "sess-of-gone", time.Now())
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testUpdateSessionTokens(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-sess")
	ctx := t.Context()
	sess := mustCreateSession(t, s, "sess-cas", "m-sess")

	require.NoError(t, s.UpdateSessionTokens(ctx, "sess-cas", sess.TokenVersion,
		secret.New("user-access-2"), secret.New("user-refresh-2")))
	got := mustSession(t, s, "sess-cas")
	want := *sess
	want.TokenVersion = sess.TokenVersion + 1
	want.AccessToken, want.RefreshToken = secret.New("user-access-2"), secret.New("user-refresh-2")
	requireRecord(t, &want, got)

	err := s.UpdateSessionTokens(ctx, "sess-cas", sess.TokenVersion,
		secret.New("user-access-3"), secret.New("user-refresh-3"))
	require.ErrorIs(t, err, store.ErrConflict)
	requireRecord(t, got, mustSession(t, s, "sess-cas"))

	err = s.UpdateSessionTokens(ctx, "sess-nobody", 1, secret.New("a"), secret.New("r"))
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testUpdateSessionTokensConcurrent(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-sess")
	sess := mustCreateSession(t, s, "sess-race", "m-sess")
	winner := raceCAS(t, func(i int) error {
		return s.UpdateSessionTokens(t.Context(), "sess-race", sess.TokenVersion,
			secret.New(fmt.Sprintf("user-access-%d", i)), secret.New(fmt.Sprintf("user-refresh-%d", i)))
	})
	got := mustSession(t, s, "sess-race")
	require.Equal(t, sess.TokenVersion+1, got.TokenVersion)
	require.Equal(t, fmt.Sprintf("user-access-%d", winner), got.AccessToken.Reveal())
	require.Equal(t, fmt.Sprintf("user-refresh-%d", winner), got.RefreshToken.Reveal())
}

func testDeleteExpiredSessions(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-a")
	ctx := t.Context()
	mustSavePortal(t, s, "m-b")
	base := time.Now().Truncate(time.Second)
	for i, id := range []string{"sess-1", "sess-2", "sess-3"} {
		sess := newSession(id, []string{"m-a", "m-b", "m-a"}[i])
		sess.ExpiresAt = base.Add(time.Duration(i+1) * time.Minute)
		require.NoError(t, s.CreateSession(ctx, sess))
	}

	n, err := s.DeleteExpiredSessions(ctx, base)
	require.NoError(t, err)
	require.Zero(t, n)

	// ExpiresAt <= now counts as expired.
	n, err = s.DeleteExpiredSessions(ctx, base.Add(2*time.Minute))
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	_, err = s.Session(ctx, "sess-3", base.Add(2*time.Minute))
	require.NoError(t, err)
	n, err = s.DeleteExpiredSessions(ctx, base.Add(2*time.Minute))
	require.NoError(t, err)
	require.Zero(t, n)

	// Gone, not just expired: still absent when asked with an earlier now.
	_, err = s.Session(ctx, "sess-1", base)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testReopen(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustSavePortal(t, s, "m-durable")
	require.NoError(t, s.UpdatePortalTokens(ctx, "m-durable", p.Version,
		secret.New("access-durable"), secret.New("refresh-durable"), p.TokenExpiry))
	mustSavePortal(t, s, "m-gone")
	require.NoError(t, s.UninstallPortal(ctx, "m-gone", true, time.Now()))
	mustCreateSession(t, s, "sess-durable", "m-durable")
	require.NoError(t, s.UpdateSessionTokens(ctx, "sess-durable", 1,
		secret.New("user-access-durable"), secret.New("user-refresh-durable")))
	wantPortal := mustPortal(t, s, "m-durable")
	wantGone := mustPortal(t, s, "m-gone")
	wantSession := mustSession(t, s, "sess-durable")
	require.NoError(t, s.Close())

	s = open(t)
	requireRecord(t, wantPortal, mustPortal(t, s, "m-durable"))
	requireRecord(t, wantGone, mustPortal(t, s, "m-gone"))
	requireRecord(t, wantSession, mustSession(t, s, "sess-durable"))
	require.NoError(t, s.Close())
}

func testDeleteSession(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-del", "sess-del")
	ctx := t.Context()
	mustCreateSession(t, s, "sess-keep", "m-del")

	require.NoError(t, s.DeleteSession(ctx, "sess-del"))
	_, err := s.Session(ctx, "sess-del", time.Now())
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.UpdateSessionTokens(ctx, "sess-del", 1, newSession("x", "m-del").AccessToken, newSession("x", "m-del").RefreshToken), store.ErrNotFound)
	mustSession(t, s, "sess-keep") // only that one
	require.NoError(t, s.DeleteSession(ctx, "sess-del"), "deleting twice is fine")
	require.NoError(t, s.DeleteSession(ctx, "sess-never"))
}

func newUndo(sessionID, memberID string) *store.UndoSnapshot {
	now := time.Now()
	return &store.UndoSnapshot{
		SessionID: sessionID, MemberID: memberID, LeadID: 1001, UserID: 42,
		Items: []store.LeadLink{
			{ContactID: 7, Sort: 10, Primary: false},
			{ContactID: 3, Sort: 20, Primary: true},
			{ContactID: 9, Sort: 20, Primary: false},
		},
		CreatedAt: now,
		ExpiresAt: now.Add(store.UndoTTL),
	}
}

func testUndoRoundTrip(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-undo", "sess-undo")
	ctx := t.Context()
	in := newUndo("sess-undo", "m-undo")
	require.NoError(t, s.SaveUndo(ctx, in))

	got, err := s.TakeUndo(ctx, "sess-undo", time.Now())
	require.NoError(t, err)
	require.Equal(t, in.MemberID, got.MemberID)
	require.Equal(t, in.LeadID, got.LeadID)
	require.Equal(t, in.UserID, got.UserID)
	require.Equal(t, in.Items, got.Items, "SORT, IS_PRIMARY and the order come back as saved")
	requireTime(t, in.CreatedAt, got.CreatedAt, "CreatedAt")
	requireTime(t, in.ExpiresAt, got.ExpiresAt, "ExpiresAt")

	_, err = s.TakeUndo(ctx, "sess-undo", time.Now())
	require.ErrorIs(t, err, store.ErrNotFound, "a snapshot is taken once")
}

func testUndoReplaceAndExpire(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-undo", "sess-undo")
	ctx := t.Context()
	first := newUndo("sess-undo", "m-undo")
	require.NoError(t, s.SaveUndo(ctx, first))
	second := newUndo("sess-undo", "m-undo")
	second.Items = []store.LeadLink{{ContactID: 5, Sort: 10, Primary: true}}
	require.NoError(t, s.SaveUndo(ctx, second))

	_, err := s.TakeUndo(ctx, "sess-undo", second.ExpiresAt)
	require.ErrorIs(t, err, store.ErrNotFound, "expired at ExpiresAt")

	require.NoError(t, s.SaveUndo(ctx, second))
	got, err := s.TakeUndo(ctx, "sess-undo", time.Now())
	require.NoError(t, err)
	require.Equal(t, second.Items, got.Items, "the newer snapshot replaced the older one")

	// An empty removal still leaves an (empty) snapshot, never a null one.
	empty := newUndo("sess-undo", "m-undo")
	empty.Items = nil
	require.NoError(t, s.SaveUndo(ctx, empty))
	got, err = s.TakeUndo(ctx, "sess-undo", time.Now())
	require.NoError(t, err)
	require.Empty(t, got.Items)
}

func testUndoNeedsSession(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-undo")
	ctx := t.Context()
	require.ErrorIs(t, s.SaveUndo(ctx, newUndo("sess-none", "m-undo")), store.ErrNotFound)
	require.Error(t, s.SaveUndo(ctx, newUndo("", "m-undo")))

	// The snapshot goes with its session: uninstall deletes sessions.
	mustCreateSession(t, s, "sess-undo", "m-undo")
	require.NoError(t, s.SaveUndo(ctx, newUndo("sess-undo", "m-undo")))
	require.NoError(t, s.UninstallPortal(ctx, "m-undo", false, time.Now()))
	mustSavePortal(t, s, "m-undo")
	_, err := s.TakeUndo(ctx, "sess-undo", time.Now())
	require.ErrorIs(t, err, store.ErrNotFound)

	// ... and so does the expiry sweep.
	sess := newSession("sess-short", "m-undo")
	sess.ExpiresAt = time.Now().Add(time.Minute)
	require.NoError(t, s.CreateSession(ctx, sess))
	require.NoError(t, s.SaveUndo(ctx, newUndo("sess-short", "m-undo")))
	_, err = s.DeleteExpiredSessions(ctx, time.Now().Add(2*time.Minute))
	require.NoError(t, err)
	_, err = s.TakeUndo(ctx, "sess-short", time.Now())
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testUndoTakenOnce(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-undo", "sess-undo")
	ctx := t.Context()
	require.NoError(t, s.SaveUndo(ctx, newUndo("sess-undo", "m-undo")))

	const n = 8
	var wg sync.WaitGroup
	got := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := s.TakeUndo(ctx, "sess-undo", time.Now())
			got <- err
		})
	}
	wg.Wait()
	close(got)
	won := 0
	for err := range got {
		if err == nil {
			won++
		} else {
			require.ErrorIs(t, err, store.ErrNotFound)
		}
	}
	require.Equal(t, 1, won, "exactly one of %d racing clicks may undo", n)
}

func testHistory(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-hist")
	ctx := t.Context()
	mustSavePortal(t, s, "m-other")
	base := time.Now().Add(-time.Hour)
	var want []store.HistoryEntry
	for i, e := range []store.HistoryEntry{
		{Action: store.ActionRemove, ContactIDs: []int64{1, 2, 3}, Outcome: store.OutcomeOK},
		{Action: store.ActionUndo, ContactIDs: []int64{1, 2, 3}, Outcome: store.OutcomeRefused, ErrorCode: "LEAD_CHANGED"},
		{Action: store.ActionRemove, ContactIDs: nil, Outcome: store.OutcomeError, ErrorCode: "ACCESS_DENIED"},
	} {
		e.MemberID, e.LeadID, e.UserID = "m-hist", int64(10+i), int64(i+1)
		e.At = base.Add(time.Duration(i) * time.Minute)
		require.NoError(t, s.AddHistory(ctx, &e))
		require.NotZero(t, e.ID)
		want = append([]store.HistoryEntry{e}, want...)
	}
	other := store.HistoryEntry{MemberID: "m-other", LeadID: 1, UserID: 1, Action: store.ActionRemove, Outcome: store.OutcomeOK}
	require.NoError(t, s.AddHistory(ctx, &other))

	got, err := s.History(ctx, "m-hist", 10)
	require.NoError(t, err)
	require.Len(t, got, 3, "only the portal's own entries")
	for i := range want {
		require.Equal(t, want[i].ID, got[i].ID, "newest first")
		require.Equal(t, want[i].LeadID, got[i].LeadID)
		require.Equal(t, want[i].UserID, got[i].UserID)
		require.Equal(t, want[i].Action, got[i].Action)
		require.Equal(t, want[i].Outcome, got[i].Outcome)
		require.Equal(t, want[i].ErrorCode, got[i].ErrorCode)
		require.ElementsMatch(t, want[i].ContactIDs, got[i].ContactIDs)
		requireTime(t, want[i].At, got[i].At, "At")
	}
	limited, err := s.History(ctx, "m-hist", 2)
	require.NoError(t, err)
	require.Len(t, limited, 2)

	// Retention: entries older than the cut go, across portals.
	n, err := s.DeleteHistoryBefore(ctx, base.Add(90*time.Second))
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	got, err = s.History(ctx, "m-hist", 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, want[0].ID, got[0].ID)

	// Uninstall with CLEAN: all of one portal's history, nobody else's.
	n, err = s.DeleteHistory(ctx, "m-hist")
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	got, err = s.History(ctx, "m-hist", 10)
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = s.History(ctx, "m-other", 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
}

func testHistoryDefaultsTime(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-hist")
	e := store.HistoryEntry{MemberID: "m-hist", LeadID: 1, UserID: 1, Action: store.ActionRemove, Outcome: store.OutcomeOK}
	before := time.Now()
	require.NoError(t, s.AddHistory(t.Context(), &e))
	requireBetween(t, before, time.Now(), e.At, "At")
	got, err := s.History(t.Context(), "m-hist", 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	requireTime(t, e.At, got[0].At, "At")
	require.NotNil(t, got[0].ContactIDs, "an empty id list reads back as empty, not nil")
	require.Equal(t, store.ViaTab, got[0].Via, "an entry that names no origin came from the tab")
	require.Zero(t, got[0].RunID)

	// Where an entry came from, and its bulk run, read back as written.
	tick()
	bulk := store.HistoryEntry{MemberID: "m-hist", LeadID: 2, UserID: 1, Action: store.ActionRemove, Outcome: store.OutcomeOK,
		Via: store.ViaBulk, RunID: 1 << 40}
	require.NoError(t, s.AddHistory(t.Context(), &bulk))
	got, err = s.History(t.Context(), "m-hist", 1)
	require.NoError(t, err)
	require.Equal(t, store.ViaBulk, got[0].Via)
	require.Equal(t, int64(1<<40), got[0].RunID, "run ids are 64-bit")
}

// testHistoryNames: the names an entry is written with read back as they
// were, the contact names in the order of the ids (a gap stays ""), and
// text that is not plain ASCII or looks like markup is kept verbatim.
func testHistoryNames(t *testing.T, open func(t *testing.T) store.Store) {
	s := openWithPortal(t, open, "m-hist")
	ctx := t.Context()
	named := store.HistoryEntry{MemberID: "m-hist", LeadID: 7, UserID: 3, Action: store.ActionRemove, Outcome: store.OutcomeOK,
		UserName: "Carol Viewer", LeadTitle: "Big conference <deal> & partners",
		ContactIDs: []int64{5, 9, 10}, ContactNames: []string{"Søren Kierkegaard", "", `Max "<b>Bold</b>" Mustermann & Co`}}
	require.NoError(t, s.AddHistory(ctx, &named))
	tick()
	bare := store.HistoryEntry{MemberID: "m-hist", LeadID: 8, UserID: 4, Action: store.ActionUndo, Outcome: store.OutcomeUncounted,
		ContactIDs: []int64{1}}
	require.NoError(t, s.AddHistory(ctx, &bare))

	got, err := s.History(ctx, "m-hist", 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, store.OutcomeUncounted, got[0].Outcome)
	require.Empty(t, got[0].UserName)
	require.Empty(t, got[0].LeadTitle)
	require.Nil(t, got[0].ContactNames, "no names: nil, however they were passed")
	require.Equal(t, []int64{1}, got[0].ContactIDs)

	require.Equal(t, named.UserName, got[1].UserName)
	require.Equal(t, named.LeadTitle, got[1].LeadTitle)
	require.Equal(t, named.ContactIDs, got[1].ContactIDs, "in the order written")
	require.Equal(t, named.ContactNames, got[1].ContactNames, "parallel to the ids")
}

// testHistoryRowsWithoutNames: a row written by a version that knew no
// names (only the columns of migration 0003) reads back with none, so the
// admins' page can fall back to the ids. The row is copied with plain SQL
// from one the store wrote, which keeps the statement free of any
// dialect's time literals.
func testHistoryRowsWithoutNames(t *testing.T, b Backend) {
	s := b.open(t, Keys(t, "current"))
	ctx := t.Context()
	mustSavePortal(t, s, "m-old")
	e := store.HistoryEntry{MemberID: "m-old", LeadID: 5, UserID: 1, Action: store.ActionRemove, Outcome: store.OutcomeOK,
		UserName: "Alice Admin", LeadTitle: "Named", ContactIDs: []int64{2, 3}, ContactNames: []string{"Анна", "Siobhán"}}
	require.NoError(t, s.AddHistory(ctx, &e))
	b.exec(t, `INSERT INTO history (member_id, lead_id, user_id, action, contact_ids, outcome, error_code, created_at)
		SELECT member_id, 6, 2, action, contact_ids, outcome, 'ACCESS_DENIED', created_at FROM history WHERE lead_id = 5`)

	got, err := s.History(ctx, "m-old", 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	var old store.HistoryEntry
	for _, g := range got {
		if g.LeadID == 6 {
			old = g
		}
	}
	require.EqualValues(t, 2, old.UserID)
	require.Equal(t, []int64{2, 3}, old.ContactIDs)
	require.Equal(t, "ACCESS_DENIED", old.ErrorCode)
	require.Empty(t, old.UserName)
	require.Empty(t, old.LeadTitle)
	require.Nil(t, old.ContactNames)
}
