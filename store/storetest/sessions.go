package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

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
