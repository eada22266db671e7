package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/store"
)

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
}
