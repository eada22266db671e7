package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// runAtRest checks what the store writes to disk: no token or raw session
// id in clear anywhere, ciphertexts that fail to open when moved to
// another row or column, and reads that survive a key rotation.
func runAtRest(t *testing.T, b Backend) {
	for name, fn := range map[string]func(*testing.T, Backend){
		"NoSecretInClear":      testNoSecretInClear,
		"MovedCiphertextFails": testMovedCiphertext,
		"Reseal":               testReseal,
		"KeyRotation":          testKeyRotation,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

func testNoSecretInClear(t *testing.T, b Backend) {
	keys := Keys(t, "current")
	s := b.open(t, keys)
	ctx := t.Context()

	// Distinctive values that cannot appear by chance. The updated pairs
	// matter as much as the first ones: an update path could write its
	// own way.
	secrets := map[string]string{
		"portal access":          "SENTINEL-portal-access-9f4c2a",
		"portal refresh":         "SENTINEL-portal-refresh-9f4c2a",
		"portal access, update":  "SENTINEL-portal-access-updated-1b7e",
		"portal refresh, update": "SENTINEL-portal-refresh-updated-1b7e",
		"other portal access":    "SENTINEL-other-access-5d1f",
		"other portal refresh":   "SENTINEL-other-refresh-5d1f",
		"session id":             "SENTINEL-session-id-c3e8a7",
		"session access":         "SENTINEL-session-access-c3e8",
		"session refresh":        "SENTINEL-session-refresh-c3e8",
		"session access, update": "SENTINEL-session-access-upd-77a0",
		"session refresh,update": "SENTINEL-session-refresh-upd-77a0",
		"second session id":      "SENTINEL-second-session-id-0b9d",
	}

	p := newPortal("m-sentinel")
	p.AccessToken, p.RefreshToken = secret.New(secrets["portal access"]), secret.New(secrets["portal refresh"])
	require.NoError(t, s.SavePortal(ctx, p))
	require.NoError(t, s.UpdatePortalTokens(ctx, "m-sentinel", p.Version,
		secret.New(secrets["portal access, update"]), secret.New(secrets["portal refresh, update"]), time.Now()))
	other := newPortal("m-sentinel-other")
	other.AccessToken, other.RefreshToken = secret.New(secrets["other portal access"]), secret.New(secrets["other portal refresh"])
	require.NoError(t, s.SavePortal(ctx, other))

	sess := newSession(secrets["session id"], "m-sentinel")
	sess.AccessToken, sess.RefreshToken = secret.New(secrets["session access"]), secret.New(secrets["session refresh"])
	require.NoError(t, s.CreateSession(ctx, sess))
	require.NoError(t, s.UpdateSessionTokens(ctx, secrets["session id"], sess.TokenVersion,
		secret.New(secrets["session access, update"]), secret.New(secrets["session refresh,update"])))
	mustCreateSession(t, s, secrets["second session id"], "m-sentinel-other")
	// A bulk run keeps its admin's session id, sealed too.
	mustBulkRun(t, s, "m-sentinel", secrets["session id"])

	check := func(when string) {
		t.Helper()
		dump := b.Dump(t)
		// The dump must really show the rows, or the search proves nothing.
		for _, visible := range []string{"m-sentinel", "m-sentinel-other", "v1:" + keys.KeyID() + ":", keys.Lookup(secrets["session id"])} {
			require.True(t, bytes.Contains(dump, []byte(visible)), "%s: dump does not show %q: Dump sees no data", when, visible)
		}
		for what, v := range secrets {
			require.False(t, bytes.Contains(dump, []byte(v)), "%s: %s found in clear in the database", when, what)
		}
	}
	check("store open")
	require.NoError(t, s.Close())
	check("store closed")
}

func testMovedCiphertext(t *testing.T, b Backend) {
	keys := Keys(t, "current")
	lookup := func(id string) string { return keys.Lookup(id) }
	tests := []struct {
		name   string
		move   string // SQL that copies a ciphertext somewhere else
		read   func(t *testing.T, s store.Store) error
		column string // the column the error must name
	}{
		{
			name:   "access token into another portal",
			move:   `UPDATE portals SET access_token = (SELECT access_token FROM portals WHERE member_id = 'm-a') WHERE member_id = 'm-b'`,
			read:   func(t *testing.T, s store.Store) error { _, err := s.Portal(t.Context(), "m-b"); return err },
			column: "access_token",
		},
		{
			name:   "refresh token into another portal",
			move:   `UPDATE portals SET refresh_token = (SELECT refresh_token FROM portals WHERE member_id = 'm-a') WHERE member_id = 'm-b'`,
			read:   func(t *testing.T, s store.Store) error { _, err := s.Portal(t.Context(), "m-b"); return err },
			column: "refresh_token",
		},
		{
			name:   "access token into refresh column",
			move:   `UPDATE portals SET refresh_token = access_token WHERE member_id = 'm-a'`,
			read:   func(t *testing.T, s store.Store) error { _, err := s.Portal(t.Context(), "m-a"); return err },
			column: "refresh_token",
		},
		{
			name:   "refresh token into access column",
			move:   `UPDATE portals SET access_token = refresh_token WHERE member_id = 'm-a'`,
			read:   func(t *testing.T, s store.Store) error { _, err := s.Portal(t.Context(), "m-a"); return err },
			column: "access_token",
		},
		{
			name: "session token into another session",
			move: fmt.Sprintf(`UPDATE sessions SET access_token = (SELECT access_token FROM sessions WHERE id_lookup = '%s') WHERE id_lookup = '%s'`,
				lookup("sess-a"), lookup("sess-b")),
			read: func(t *testing.T, s store.Store) error {
				_, err := s.Session(t.Context(), "sess-b", time.Now())
				return err
			},
			column: "access_token",
		},
		{
			name: "session token into its portal",
			move: fmt.Sprintf(`UPDATE portals SET access_token = (SELECT access_token FROM sessions WHERE id_lookup = '%s') WHERE member_id = 'm-a'`,
				lookup("sess-a")),
			read:   func(t *testing.T, s store.Store) error { _, err := s.Portal(t.Context(), "m-a"); return err },
			column: "access_token",
		},
		{
			name: "portal token into a session",
			move: fmt.Sprintf(`UPDATE sessions SET refresh_token = (SELECT refresh_token FROM portals WHERE member_id = 'm-a') WHERE id_lookup = '%s'`, lookup("sess-a")),
			read: func(t *testing.T, s store.Store) error {
				_, err := s.Session(t.Context(), "sess-a", time.Now())
				return err
			},
			column: "refresh_token",
		},
		{
			name:   "truncated ciphertext",
			move:   `UPDATE portals SET access_token = substr(access_token, 1, length(access_token) - 4) WHERE member_id = 'm-a'`,
			read:   func(t *testing.T, s store.Store) error { _, err := s.Portal(t.Context(), "m-a"); return err },
			column: "access_token",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t, keys)
			mustSavePortal(t, s, "m-a")
			mustSavePortal(t, s, "m-b")
			mustCreateSession(t, s, "sess-a", "m-a")
			mustCreateSession(t, s, "sess-b", "m-a")
			require.NoError(t, tc.read(t, s), "before tampering")

			b.exec(t, tc.move)
			err := tc.read(t, s)
			require.Error(t, err, "moved ciphertext opened: a token would go to the wrong place")
			require.ErrorIs(t, err, secret.ErrCorrupt)
			require.NotErrorIs(t, err, store.ErrNotFound)
			require.Contains(t, err.Error(), tc.column)
			for _, v := range []string{"access-m-a", "refresh-m-a", "access-m-b", "refresh-m-b", "user-access-sess-a", "user-refresh-sess-a", "sess-a", "sess-b"} {
				require.NotContains(t, err.Error(), v, "error text leaks a secret")
			}
		})
	}
}

func testKeyRotation(t *testing.T, b Backend) {
	ctx := t.Context()
	oldKeys := Keys(t, "old")
	s := b.open(t, oldKeys)
	p := mustSavePortal(t, s, "m-rotate")
	q := mustSavePortal(t, s, "m-untouched")
	mustCreateSession(t, s, "sess-rotate", "m-rotate")
	require.NoError(t, s.Close())

	// New current key, old one kept for reading: every row still opens.
	s = b.open(t, Keys(t, "new", "old"))
	got := mustPortal(t, s, "m-rotate")
	requireRecord(t, p, got)
	requireRecord(t, q, mustPortal(t, s, "m-untouched"))
	// Sessions survive the rotation: their rows are keyed by an unkeyed
	// digest and their tokens open with the previous key.
	sess, err := s.Session(ctx, "sess-rotate", time.Now())
	require.NoError(t, err)
	require.False(t, sess.AccessToken.IsZero())
	// New writes use the new key.
	require.NoError(t, s.UpdatePortalTokens(ctx, "m-rotate", got.Version,
		secret.New("access-new-key"), secret.New("refresh-new-key"), time.Now()))
	mustCreateSession(t, s, "sess-new-key", "m-rotate")
	require.NoError(t, s.Close())

	// Old key retired: rewritten rows open, the untouched one fails with a
	// clear error rather than a wrong token.
	s = b.open(t, Keys(t, "new"))
	require.Equal(t, "refresh-new-key", mustPortal(t, s, "m-rotate").RefreshToken.Reveal())
	mustSession(t, s, "sess-new-key")
	_, err = s.Portal(ctx, "m-untouched")
	require.ErrorIs(t, err, secret.ErrUnknownKey)
	require.NoError(t, s.Close())

	// And the old keyring alone cannot read what the new key sealed.
	s = b.open(t, oldKeys)
	_, err = s.Portal(ctx, "m-rotate")
	require.ErrorIs(t, err, secret.ErrUnknownKey)
	require.NoError(t, s.Close())
}

// testReseal: after a rotation, ResealTokens moves every stored token to the
// current key, so the previous secret can be dropped without a reinstall;
// a second pass has nothing to do; the application-token hash is renewed
// with a compare-and-swap.
func testReseal(t *testing.T, b Backend) {
	ctx := t.Context()
	old := Keys(t, "old")
	s := b.open(t, old)
	p := mustSavePortal(t, s, "m-reseal")
	sess := mustCreateSession(t, s, "sess-reseal", "m-reseal")
	run := mustBulkRun(t, s, "m-reseal", "sess-reseal")
	require.NoError(t, s.Close())

	rotated := Keys(t, "new", "old")
	s = b.open(t, rotated)
	r, ok := s.(store.Resealer)
	require.True(t, ok, "backend implements store.Resealer")
	n, err := r.ResealTokens(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, n, "two portal tokens, two session tokens and a bulk run's session reference")
	n, err = r.ResealTokens(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left under the old key")

	newHash := rotated.Hash(secret.New("app-token-m-reseal"))
	require.NoError(t, r.UpdateAppTokenHash(ctx, "m-reseal", p.AppTokenHash, newHash))
	require.ErrorIs(t, r.UpdateAppTokenHash(ctx, "m-reseal", p.AppTokenHash, newHash), store.ErrConflict)
	require.NoError(t, s.Close())

	// The old key retired: everything still opens.
	s = b.open(t, Keys(t, "new"))
	got := mustPortal(t, s, "m-reseal")
	require.Equal(t, p.AccessToken.Reveal(), got.AccessToken.Reveal())
	require.Equal(t, p.RefreshToken.Reveal(), got.RefreshToken.Reveal())
	require.Equal(t, newHash, got.AppTokenHash)
	gotSess := mustSession(t, s, "sess-reseal")
	require.Equal(t, sess.AccessToken.Reveal(), gotSess.AccessToken.Reveal())
	gotRun, err := s.BulkRun(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, "sess-reseal", gotRun.SessionID, "the run still finds its admin's session")
	require.NoError(t, s.Close())
}
