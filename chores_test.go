package main

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/storetest"
)

// Each chore runs as a job of the app on either store and does its work:
// an expired session is swept, a history entry past HISTORY_RETENTION_DAYS
// goes, tokens sealed under APP_SECRET_PREVIOUS are resealed under
// APP_SECRET, and an unconfirmed uninstall past its grace period is
// carried out. Each says so in its log line, as before.
func TestChoresRunAsJobs(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			a := newAppProc(t)
			if backend == "postgres" {
				a.env["DATABASE_URL"] = storetest.FreshSchema(t, "chores_")
			}
			dsn := a.env["DATABASE_URL"]
			previous := make([]byte, 32)
			for i := range previous {
				previous[i] = byte(100 + i)
			}
			a.env["APP_SECRET_PREVIOUS"] = hex.EncodeToString(previous)

			// The database as an instance under the previous secret left it.
			old, err := secret.NewKeyring(previous)
			require.NoError(t, err)
			seedChores(t, dsn, old)

			a.start()
			for _, line := range []string{
				`"msg":"swept sessions","count":1`,
				`"msg":"swept history","count":1,"retention_days":90`,
				`"msg":"resealed tokens under the current secret","count":4`,
				`"msg":"uninstalled reported portals after the grace period","count":1`,
			} {
				require.Eventually(t, func() bool { return strings.Contains(a.output(), line) }, 20*time.Second, 20*time.Millisecond,
					"no %s in the log:\n%s", line, a.output())
			}
			require.NoError(t, a.stop())
			assert.NotContains(t, a.output(), `"level":"ERROR"`)
			assert.NotContains(t, a.output(), `"level":"WARN"`)

			// What is left reads under the current secret alone.
			master, err := hex.DecodeString(a.env["APP_SECRET"])
			require.NoError(t, err)
			cur, err := secret.NewKeyring(master)
			require.NoError(t, err)
			st, err := openStore(t.Context(), dsn, cur)
			require.NoError(t, err)
			defer st.Close()
			ctx := t.Context()
			p, err := st.Portal(ctx, "m-kept")
			require.NoError(t, err, "resealed")
			assert.Equal(t, "access-kept", p.AccessToken.Reveal())
			_, err = st.Session(ctx, "sess-live", time.Now())
			require.NoError(t, err, "the live session stays")
			_, err = st.Session(ctx, "sess-expired", time.Now().Add(-2*time.Hour))
			require.ErrorIs(t, err, store.ErrNotFound, "the expired session went")
			h, err := st.History(ctx, "m-kept", 10)
			require.NoError(t, err)
			require.Len(t, h, 1)
			assert.Equal(t, int64(2), h[0].LeadID, "the recent entry stays")
			gone, err := st.Portal(ctx, "m-gone")
			require.NoError(t, err)
			assert.False(t, gone.Active(), "uninstalled after the grace period")
		})
	}
}

// seedChores leaves, in the database at dsn, work for every chore: an
// installed portal and a live session whose tokens keys sealed, an
// expired session,
// a history entry past the default retention and a recent one, and a
// portal reported uninstalled two days ago, with nothing to ask Bitrix24
// with.
func seedChores(t *testing.T, dsn string, keys *secret.Keyring) {
	t.Helper()
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		require.DirExists(t, filepath.Dir(path))
	}
	ctx := context.Background()
	st, err := openStore(ctx, dsn, keys)
	require.NoError(t, err)
	defer st.Close()
	now := time.Now()
	require.NoError(t, st.SavePortal(ctx, &store.Portal{MemberID: "m-kept", Domain: "kept.example", RESTEndpoint: "https://kept.example/rest/",
		AccessToken: secret.New("access-kept"), RefreshToken: secret.New("refresh-kept"), TokenExpiry: now.Add(time.Hour)}))
	require.NoError(t, st.CreateSession(ctx, &store.Session{ID: "sess-live", MemberID: "m-kept", UserID: 1, LeadID: 1,
		AccessToken: secret.New("a-live"), RefreshToken: secret.New("r-live"), ExpiresAt: now.Add(time.Hour)}))
	// Without tokens, so the reseal's count does not depend on whether
	// the sweep ran first.
	require.NoError(t, st.CreateSession(ctx, &store.Session{ID: "sess-expired", MemberID: "m-kept", UserID: 1, LeadID: 1,
		CreatedAt: now.Add(-3 * time.Hour), ExpiresAt: now.Add(-time.Hour)}))
	for lead, at := range map[int64]time.Time{1: now.Add(-100 * 24 * time.Hour), 2: now.Add(-time.Hour)} {
		require.NoError(t, st.AddHistory(ctx, &store.HistoryEntry{MemberID: "m-kept", LeadID: lead, UserID: 1,
			Action: store.ActionRemove, ContactIDs: []int64{7}, Outcome: store.OutcomeOK, At: at}))
	}
	require.NoError(t, st.SavePortal(ctx, &store.Portal{MemberID: "m-gone"}))
	require.NoError(t, st.ReportUninstall(ctx, "m-gone", false, now.Add(-48*time.Hour)))
}
