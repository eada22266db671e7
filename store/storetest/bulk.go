package storetest

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/store"
)

// mustBulkRun creates a queued run of memberID's admin session sid.
func mustBulkRun(t *testing.T, s store.Store, memberID, sid string) *store.BulkRun {
	t.Helper()
	r := &store.BulkRun{MemberID: memberID, UserID: 7, UserName: "Ada Admin", Lang: "de", SessionID: sid, Matched: 3,
		Filter: store.BulkFilter{Stages: []string{"JUNK"}, Sources: []string{"WEB", "CALL"}, ResponsibleID: 5, CreatedFrom: "2026-01-01"}}
	require.NoError(t, s.CreateBulkRun(t.Context(), r))
	require.NotZero(t, r.ID)
	return r
}

// newBulkStore opens a store with portal m1 installed, its admin session
// sid-1, and a queued run of that session.
func newBulkStore(t *testing.T, open func(t *testing.T) store.Store) (store.Store, *store.BulkRun) {
	t.Helper()
	s := open(t)
	mustSavePortal(t, s, "m1")
	mustCreateSession(t, s, "sid-1", "m1")
	return s, mustBulkRun(t, s, "m1", "sid-1")
}

// mustLease takes run id's lease for owner for a minute from now.
func mustLease(t *testing.T, s store.Store, id int64, owner string, now time.Time) {
	t.Helper()
	_, err := s.LeaseBulkRun(t.Context(), id, owner, now, now.Add(time.Minute))
	require.NoError(t, err)
}

// testBulkRunRoundTrip: a run reads back as created (the session id
// unsealed), one active run per portal, and the latest run is the newest.
func testBulkRunRoundTrip(t *testing.T, open func(t *testing.T) store.Store) {
	s, r := newBulkStore(t, open)
	ctx := t.Context()

	got, err := s.BulkRun(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, r.Filter, got.Filter)
	assert.Equal(t, "sid-1", got.SessionID)
	assert.Equal(t, store.RunQueued, got.State)
	assert.Equal(t, int64(3), got.Matched)
	assert.Equal(t, "Ada Admin", got.UserName)
	assert.True(t, got.Active())
	assert.True(t, got.LeaseUntil.IsZero())

	err = s.CreateBulkRun(ctx, &store.BulkRun{MemberID: "m1", UserID: 7, SessionID: "sid-1"})
	require.ErrorIs(t, err, store.ErrConflict, "one active run per portal")
	err = s.CreateBulkRun(ctx, &store.BulkRun{MemberID: "nobody", UserID: 7, SessionID: "sid-1"})
	require.ErrorIs(t, err, store.ErrNotFound)

	now := time.Now()
	require.NoError(t, s.SetBulkRunState(ctx, r.ID, []string{store.RunQueued}, store.RunCancelled, "", "", now))
	require.ErrorIs(t, s.SetBulkRunState(ctx, r.ID, []string{store.RunRunning}, store.RunPaused, "", "", now), store.ErrConflict)
	done, err := s.BulkRun(ctx, r.ID)
	require.NoError(t, err)
	assert.False(t, done.FinishedAt.IsZero())
	assert.WithinDuration(t, now.Add(store.BulkUndoTTL), done.UndoUntil, time.Second)

	r2 := mustBulkRun(t, s, "m1", "sid-1")
	latest, err := s.LatestBulkRun(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, r2.ID, latest.ID)
	_, err = s.LatestBulkRun(ctx, "m2")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// testBulkLease: one owner at a time; a lapsed lease is taken over, and a
// stale owner can no longer claim or settle.
func testBulkLease(t *testing.T, open func(t *testing.T) store.Store) {
	s, r := newBulkStore(t, open)
	ctx := t.Context()
	now := time.Now()

	stale, err := s.StaleBulkRuns(ctx, now)
	require.NoError(t, err)
	assert.Equal(t, []int64{r.ID}, stale, "a queued run with no lease is work to pick up")

	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := s.LeaseBulkRun(ctx, r.ID, "instance-"+strconv.Itoa(i), now, now.Add(time.Minute))
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, store.ErrConflict) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, wins, "exactly one instance takes a free lease")
	got, err := s.BulkRun(ctx, r.ID)
	require.NoError(t, err)
	owner := got.LeaseOwner
	stale, err = s.StaleBulkRuns(ctx, now)
	require.NoError(t, err)
	assert.Empty(t, stale)

	_, err = s.LeaseBulkRun(ctx, r.ID, owner, now, now.Add(2*time.Minute))
	require.NoError(t, err, "the owner renews")
	later := now.Add(3 * time.Minute)
	_, err = s.LeaseBulkRun(ctx, r.ID, "new", later, later.Add(time.Minute))
	require.NoError(t, err, "a lapsed lease is taken over")
	err = s.ClaimBulkLeads(ctx, r.ID, owner, 10, []store.BulkLead{{LeadID: 10, State: store.LeadClaimed}})
	require.ErrorIs(t, err, store.ErrConflict, "the former owner claims nothing")
	require.NoError(t, s.ReleaseBulkRun(ctx, r.ID, "new"))
	_, err = s.LeaseBulkRun(ctx, r.ID, owner, now, now.Add(time.Minute))
	require.NoError(t, err, "a released lease is free")
}

// testBulkClaimSettle: claims move the cursor and count skipped leads;
// settling counts and records each lead once, however often it is tried.
func testBulkClaimSettle(t *testing.T, open func(t *testing.T) store.Store) {
	s, r := newBulkStore(t, open)
	ctx := t.Context()
	now := time.Now()
	mustLease(t, s, r.ID, "me", now)

	links := []store.LeadLink{{ContactID: 5, Sort: 10, Primary: true}, {ContactID: 6, Sort: 20}}
	claim := []store.BulkLead{
		{LeadID: 10, Title: "Ten", State: store.LeadClaimed, Links: links},
		{LeadID: 11, Title: "Eleven", State: store.LeadClaimed, Links: links[:1]},
		{LeadID: 12, Title: "Twelve", State: store.LeadSkipped},
	}
	require.NoError(t, s.ClaimBulkLeads(ctx, r.ID, "me", 12, claim))
	require.NoError(t, s.ClaimBulkLeads(ctx, r.ID, "me", 12, claim), "a repeated claim changes nothing")
	got, err := s.BulkRun(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(12), got.Cursor)
	assert.Equal(t, int64(1), got.Leads, "the skipped lead counts once")

	claimed, err := s.BulkLeads(ctx, r.ID, store.LeadClaimed, 50)
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	assert.Equal(t, links, claimed[0].Links)
	assert.Equal(t, "Ten", claimed[0].Title)

	entry := func(lead int64, outcome string) *store.HistoryEntry {
		return &store.HistoryEntry{MemberID: "m1", LeadID: lead, UserID: 7, Action: store.ActionRemove, Outcome: outcome,
			Via: store.ViaBulk, RunID: r.ID}
	}
	settle := []store.BulkLead{
		{LeadID: 10, State: store.LeadDone, Links: links, History: entry(10, store.OutcomeOK)},
		{LeadID: 11, State: store.LeadRefused, ErrorCode: "ACCESS_DENIED", History: entry(11, store.OutcomeError)},
	}
	for range 2 {
		require.NoError(t, s.SettleBulkLeads(ctx, r.ID, "me", store.LeadClaimed, settle))
	}
	got, err = s.BulkRun(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(3), got.Leads)
	assert.Equal(t, int64(2), got.Removed)
	assert.Equal(t, int64(1), got.Refused)
	h, err := s.History(ctx, "m1", 10)
	require.NoError(t, err)
	require.Len(t, h, 2, "each lead recorded once")
	assert.Equal(t, store.ViaBulk, h[0].Via)
	assert.Equal(t, r.ID, h[0].RunID)
	refused, err := s.BulkLeads(ctx, r.ID, store.LeadRefused, 50)
	require.NoError(t, err)
	require.Len(t, refused, 1)
	assert.Equal(t, "ACCESS_DENIED", refused[0].ErrorCode)
	assert.Equal(t, links[:1], refused[0].Links, "links kept when the settle names none")

	require.ErrorIs(t, s.SettleBulkLeads(ctx, r.ID, "other", store.LeadClaimed, settle), store.ErrConflict)
}

// testBulkUndo: an undo starts only on a final run within its window, once.
func testBulkUndo(t *testing.T, open func(t *testing.T) store.Store) {
	s, r := newBulkStore(t, open)
	ctx := t.Context()
	mustCreateSession(t, s, "sid-2", "m1")
	now := time.Now()
	require.ErrorIs(t, s.SetBulkUndo(ctx, r.ID, store.UndoNone, store.UndoRunning, "", now), store.ErrConflict,
		"a run in progress is not undone")
	require.NoError(t, s.SetBulkRunState(ctx, r.ID, []string{store.RunQueued}, store.RunDone, "", "", now))
	require.ErrorIs(t, s.SetBulkUndo(ctx, r.ID, store.UndoNone, store.UndoRunning, "", now.Add(store.BulkUndoTTL)), store.ErrConflict,
		"past the window")
	require.NoError(t, s.SetBulkUndo(ctx, r.ID, store.UndoNone, store.UndoRunning, "sid-2", now))
	require.ErrorIs(t, s.SetBulkUndo(ctx, r.ID, store.UndoNone, store.UndoRunning, "", now), store.ErrConflict, "once")
	got, err := s.BulkRun(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, "sid-2", got.SessionID, "the undo acts with the clicking admin's session")
	assert.True(t, got.Active())
	stale, err := s.StaleBulkRuns(ctx, now)
	require.NoError(t, err)
	assert.Equal(t, []int64{r.ID}, stale, "an undo in progress is work to pick up")
}

// testBulkUninstall: a plain uninstall cancels the portal's run at work
// (it has no session left) and stops its undo at work, so neither waits
// forever nor blocks a run after a reinstall; another portal's run goes
// on.
func testBulkUninstall(t *testing.T, open func(t *testing.T) store.Store) {
	s, undoing := newBulkStore(t, open)
	ctx := t.Context()
	now := time.Now()
	require.NoError(t, s.SetBulkRunState(ctx, undoing.ID, []string{store.RunQueued}, store.RunDone, "", "", now))
	require.NoError(t, s.SetBulkUndo(ctx, undoing.ID, store.UndoNone, store.UndoRunning, "", now))
	running := mustBulkRun(t, s, "m1", "sid-1")
	require.NoError(t, s.SetBulkRunState(ctx, running.ID, []string{store.RunQueued}, store.RunRunning, "", "", now))
	mustSavePortal(t, s, "m2")
	mustCreateSession(t, s, "sid-m2", "m2")
	other := mustBulkRun(t, s, "m2", "sid-m2")

	require.NoError(t, s.UninstallPortal(ctx, "m1", false, now))
	got, err := s.BulkRun(ctx, running.ID)
	require.NoError(t, err)
	assert.Equal(t, store.RunCancelled, got.State)
	assert.Equal(t, "UNINSTALLED", got.ErrorCode)
	assert.False(t, got.Active())
	assert.WithinDuration(t, now.Add(store.BulkUndoTTL), got.UndoUntil, time.Second, "its undo window as for any final run")
	got, err = s.BulkRun(ctx, undoing.ID)
	require.NoError(t, err)
	assert.Equal(t, store.RunDone, got.State)
	assert.Equal(t, store.UndoNone, got.UndoState, "the undo stopped, to be started again")
	stale, err := s.StaleBulkRuns(ctx, now.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, []int64{other.ID}, stale, "only the other portal's run has work left")
	got, err = s.BulkRun(ctx, other.ID)
	require.NoError(t, err)
	assert.Equal(t, store.RunQueued, got.State)

	require.NoError(t, s.UninstallPortal(ctx, "m1", false, now.Add(time.Minute)), "a repeat")
	got, err = s.BulkRun(ctx, running.ID)
	require.NoError(t, err)
	assert.WithinDuration(t, now, got.FinishedAt, time.Second, "a repeat changes nothing")
}

// testBulkUninstallClean: an uninstall that deletes the app's data
// deletes the portal's runs and their leads, and nothing of another
// portal's.
func testBulkUninstallClean(t *testing.T, open func(t *testing.T) store.Store) {
	s, r := newBulkStore(t, open)
	ctx := t.Context()
	now := time.Now()
	mustLease(t, s, r.ID, "me", now)
	claim := []store.BulkLead{
		{LeadID: 10, Title: "Ten", State: store.LeadClaimed, Links: []store.LeadLink{{ContactID: 5, Sort: 10, Primary: true}}},
		{LeadID: 11, Title: "Eleven", State: store.LeadSkipped},
	}
	require.NoError(t, s.ClaimBulkLeads(ctx, r.ID, "me", 11, claim))
	mustSavePortal(t, s, "m2")
	mustCreateSession(t, s, "sid-m2", "m2")
	other := mustBulkRun(t, s, "m2", "sid-m2")
	mustLease(t, s, other.ID, "me", now)
	require.NoError(t, s.ClaimBulkLeads(ctx, other.ID, "me", 10, claim[:1]))

	require.NoError(t, s.UninstallPortal(ctx, "m1", true, now))
	_, err := s.BulkRun(ctx, r.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "the run is gone")
	_, err = s.LatestBulkRun(ctx, "m1")
	require.ErrorIs(t, err, store.ErrNotFound)
	for _, state := range []string{store.LeadClaimed, store.LeadSkipped} {
		leads, err := s.BulkLeads(ctx, r.ID, state, 50)
		require.NoError(t, err)
		assert.Empty(t, leads, "its %s leads are gone", state)
	}
	require.ErrorIs(t, s.SettleBulkLeads(ctx, r.ID, "me", store.LeadClaimed, nil), store.ErrNotFound,
		"a worker in the middle of a step records nothing")

	got, err := s.BulkRun(ctx, other.ID)
	require.NoError(t, err, "the other portal's run stays")
	assert.Equal(t, other.ID, got.ID)
	leads, err := s.BulkLeads(ctx, other.ID, store.LeadClaimed, 50)
	require.NoError(t, err)
	assert.Len(t, leads, 1)

	// A plain uninstall first, then the clean one (Bitrix24 sends both
	// when the admin ticks "delete data" on a second try).
	mustCreateSession(t, s, "sid-m2b", "m2")
	require.NoError(t, s.SetBulkRunState(ctx, other.ID, []string{store.RunQueued}, store.RunDone, "", "", now))
	require.NoError(t, s.UninstallPortal(ctx, "m2", false, now))
	require.NoError(t, s.UninstallPortal(ctx, "m2", true, now))
	_, err = s.BulkRun(ctx, other.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}
