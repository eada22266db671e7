package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/store"
)

var uninstallTests = []struct {
	name string
	fn   func(t *testing.T, open func(t *testing.T) store.Store)
}{
	{"UninstallReport/ReportClearAndList", testUninstallReport},
	{"UninstallReport/ReinstallOrUninstallEndsIt", testUninstallReportEnds},
	{"RecentTokens", testRecentTokens},
}

func testUninstallReport(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	mustSavePortal(t, s, "m-report")
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
	s := open(t)
	mustSavePortal(t, s, "m-re")
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
	s := open(t)
	mustSavePortal(t, s, "m-tokens")
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
