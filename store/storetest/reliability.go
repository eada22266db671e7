package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/store"
)

// reliabilityTests are the contract of the methods the refresh, rename and
// fault handling rely on (see store.Store).
var reliabilityTests = []struct {
	name string
	fn   func(t *testing.T, open func(t *testing.T) store.Store)
}{
	{"DeleteSession", testDeleteSession},
	{"UpdatePortalEndpoint/CompareAndSwap", testUpdatePortalEndpoint},
	{"UpdatePortalEndpoint/Concurrent", testUpdatePortalEndpointConcurrent},
	{"FlagPortal", testFlagPortal},
}

func testDeleteSession(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	mustSavePortal(t, s, "m-del")
	mustCreateSession(t, s, "sess-del", "m-del")
	mustCreateSession(t, s, "sess-keep", "m-del")

	require.NoError(t, s.DeleteSession(ctx, "sess-del"))
	_, err := s.Session(ctx, "sess-del", time.Now())
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.UpdateSessionTokens(ctx, "sess-del", 1, newSession("x", "m-del").AccessToken, newSession("x", "m-del").RefreshToken), store.ErrNotFound)
	mustSession(t, s, "sess-keep") // only that one
	require.NoError(t, s.DeleteSession(ctx, "sess-del"), "deleting twice is fine")
	require.NoError(t, s.DeleteSession(ctx, "sess-never"))
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
