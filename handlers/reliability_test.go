package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/handlers"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
)

// Reliability under faults: security-bar checklist rows G (refresh races)
// and H (upstream faults on the delete). Each test names its row.

// clickAll clicks the tab's button n times at once on the given instances
// (round robin) and returns the statuses.
func (e *testEnv) clickAll(tab page, n int, bases ...string) []int {
	e.t.Helper()
	if len(bases) == 0 {
		bases = []string{e.base}
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range statuses {
		wg.Go(func() {
			<-start
			statuses[i] = e.clickRemoveOn(bases[i%len(bases)], tab).status
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

// deletesSince counts crm.lead.contact.items.delete sub-calls that reached
// the portal's method (not the ones a fault answered instead).
func deletesSince(p *simulator.Portal, mark int) int {
	n := 0
	for _, c := range p.Calls()[mark:] {
		if c.Method == "crm.lead.contact.items.delete" {
			n++
		}
	}
	return n
}

// G1: 100 concurrent removals on one session whose access token has
// expired: exactly one refresh reaches the OAuth server, every click
// succeeds (run with -race).
func TestG1HundredConcurrentRemovalsRefreshOnce(t *testing.T) {
	t.Parallel()
	e, lead, tab := newTestTab(t, 6)
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	mark, callMark := len(e.sim.Refreshes()), len(e.portal.Calls())
	e.sim.Advance(61 * time.Minute)

	statuses := e.clickAll(tab, 100)
	assert.True(t, allOK(statuses), "statuses: %v", statuses)
	ok, errs := refreshesSince(e, mark)
	assert.Equal(t, 1, ok, "exactly one refresh")
	assert.Empty(t, errs, "no invalid_grant: the single-use token was spent once")
	assert.Empty(t, e.portal.LeadContacts(lead))
	// Concurrent clicks share one removal; late ones find nothing left.
	assert.LessOrEqual(t, deletesSince(e.portal, callMark), 100)
}

// G2: two app instances on one PostgreSQL database, clicks on both for a
// session whose token expired: exactly one refresh; the instance that
// waited for the row lock uses the pair the other one stored.
func TestG2TwoInstancesOnePostgresRefreshOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, withPostgres())
	b := e.addInstance()
	e.install()
	lead := e.leadWithContacts(6)
	tab := e.openTab(2, lead, "en")
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	mark := len(e.sim.Refreshes())
	e.sim.Advance(61 * time.Minute)
	// Slow the refresh down so both instances are surely inside it at once.
	e.sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Delay: 300 * time.Millisecond})

	statuses := e.clickAll(tab, 20, e.base, b.base)
	assert.True(t, allOK(statuses), "statuses: %v", statuses)
	ok, errs := refreshesSince(e, mark)
	assert.Equal(t, 1, ok, "exactly one refresh across both instances")
	assert.Empty(t, errs)
	assert.Empty(t, e.portal.LeadContacts(lead))

	// Both instances now use the stored pair without refreshing again.
	require.NoError(t, e.portal.LinkContact(lead, 1, 10, true))
	assert.Equal(t, http.StatusOK, e.clickRemoveOn(b.base, tab).status)
	require.NoError(t, e.portal.LinkContact(lead, 2, 10, true))
	assert.Equal(t, http.StatusOK, e.clickRemoveOn(e.base, tab).status)
	ok, _ = refreshesSince(e, mark)
	assert.Equal(t, 1, ok)
}

// The page is rendered by instance A and the button handled by instance B
// (no sticky sessions): the session lives in PostgreSQL, the page context
// is verified with the shared keys.
func TestPageFromInstanceAClickOnInstanceB(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, withPostgres())
	b := e.addInstance()
	e.install()
	lead := e.leadWithContacts(3)
	tab := e.openTab(2, lead, "en")
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	res := e.clickRemoveOn(b.base, tab)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Empty(t, e.portal.LeadContacts(lead))
	deletes := e.portal.CallsTo("crm.lead.contact.items.delete")
	require.Len(t, deletes, 1)
	assert.Equal(t, 2, deletes[0].UserID, "with the clicking user's token")

	// And with an expired token, refreshed by B, used later by A.
	mark := len(e.sim.Refreshes())
	e.sim.Advance(61 * time.Minute)
	require.NoError(t, e.portal.LinkContact(lead, 1, 10, true))
	assert.Equal(t, http.StatusOK, e.clickRemoveOn(b.base, tab).status)
	require.NoError(t, e.portal.LinkContact(lead, 2, 10, true))
	assert.Equal(t, http.StatusOK, e.clickRemoveOn(e.base, tab).status)
	ok, errs := refreshesSince(e, mark)
	assert.Equal(t, 1, ok)
	assert.Empty(t, errs)
}

// spendFirst is an OAuth client that, on the first refresh, lets "another
// writer" (one that does not take the session lock) spend the refresh token
// and store the new pair first, so the app's own refresh gets invalid_grant
// with a newer pair already in the store.
type spendFirst struct {
	handlers.OAuth
	spy   *lockSpy
	armed *atomic.Bool // not during the install
	once  sync.Once
}

func (s *spendFirst) Refresh(ctx context.Context, server string, refresh secret.String) (*oauth.Token, error) {
	if !s.armed.Load() {
		return s.OAuth.Refresh(ctx, server, refresh)
	}
	s.once.Do(func() {
		cur := s.spy.session()
		tok, err := s.OAuth.Refresh(ctx, server, refresh)
		if err == nil {
			err = s.spy.Store.UpdateSessionTokens(ctx, cur.ID, cur.TokenVersion, tok.AccessToken, tok.RefreshToken)
		}
		if err != nil {
			panic(err)
		}
	})
	return s.OAuth.Refresh(ctx, server, refresh)
}

// lockSpy remembers the session the app locked last.
type lockSpy struct {
	store.Store
	mu sync.Mutex
	id string
}

func (l *lockSpy) WithSessionLock(ctx context.Context, id string, fn func(context.Context) error) error {
	l.mu.Lock()
	l.id = id
	l.mu.Unlock()
	return l.Store.WithSessionLock(ctx, id, fn)
}

func (l *lockSpy) session() *store.Session {
	l.mu.Lock()
	id := l.id
	l.mu.Unlock()
	s, err := l.Store.Session(context.Background(), id, time.Now())
	if err != nil {
		panic(err)
	}
	return s
}

// G3: with single-use refresh tokens, a refresh that finds its token spent
// re-reads the store: a newer pair there is used (recovery); none means the
// grant is dead, which ends the session with a clear "reopen the tab" —
// and the next click says so at once, without another refresh or call.
func TestG3SpentRefreshTokenRecoversOrEndsTheSession(t *testing.T) {
	t.Parallel()
	t.Run("newer pair stored meanwhile", func(t *testing.T) {
		var spy *lockSpy
		var armed atomic.Bool
		e := newTestEnv(t,
			withStoreWrapper(func(st store.Store) store.Store { spy = &lockSpy{Store: st}; return spy }),
			func(e *testEnv) {
				// Built after the store wrapper (Deps are filled in order).
				e.wrapOAuth = func(o handlers.OAuth) handlers.OAuth { return &spendFirst{OAuth: o, spy: spy, armed: &armed} }
			})
		e.install()
		armed.Store(true)
		lead := e.leadWithContacts(3)
		tab := e.openTab(2, lead, "en")
		mark := len(e.sim.Refreshes())
		e.sim.Advance(61 * time.Minute)
		res := e.clickRemoveOn(e.base, tab)
		require.Equal(t, http.StatusOK, res.status, res.body)
		assert.Empty(t, e.portal.LeadContacts(lead))
		ok, errs := refreshesSince(e, mark)
		assert.Equal(t, 1, ok, "the other writer's refresh")
		assert.Equal(t, []string{"invalid_grant"}, errs, "ours found the token spent, and recovered")
	})
	t.Run("dead grant", func(t *testing.T) {
		e, lead, tab := newTestTab(t, 3)
		mark := len(e.sim.Refreshes())
		e.sim.Advance(61 * time.Minute)
		e.sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Status: 400, Code: "invalid_grant", Description: "Invalid refresh token"})
		res := e.clickRemoveOn(e.base, tab)
		assert.Equal(t, http.StatusUnauthorized, res.status)
		assert.Contains(t, res.doc.Find(".alert-danger").Text(), "open it again")
		callMark := len(e.portal.Calls())
		res = e.clickRemoveOn(e.base, tab)
		assert.Equal(t, http.StatusUnauthorized, res.status, "no loop: the session is over")
		assert.Len(t, e.sim.Refreshes()[mark:], 1, "one refresh attempt in all")
		n, _ := batchRequests(e.portal, callMark)
		assert.Zero(t, n, "and no call to the portal either")
		assert.Len(t, e.portal.LeadContacts(lead), 3)
	})
}

// G4: the refresh succeeded upstream but storing the new pair failed: the
// write is retried (loudly logged, without the token), the pair persisted,
// and the next click uses it without refreshing. If every write fails, the
// loss is logged at error level and the session ends cleanly later.
func TestG4RefreshedPairIsStoredDespiteFailedWrites(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		failures  int32
		persisted bool
	}{
		{"first write fails", 1, true},
		{"every write under the lock fails", 4, true},
		{"every write fails", 1000, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fw *failingWrites
			e := newTestEnv(t, withStoreWrapper(func(st store.Store) store.Store {
				fw = &failingWrites{Store: st}
				fw.left.Store(tc.failures)
				return fw
			}))
			e.install()
			lead := e.leadWithContacts(3)
			tab := e.openTab(2, lead, "en")
			mark := len(e.sim.Refreshes())
			e.sim.Advance(61 * time.Minute)
			res := e.clickRemoveOn(e.base, tab)
			require.Equal(t, http.StatusOK, res.status, "this click works either way: %s", res.body)
			assert.Empty(t, e.portal.LeadContacts(lead))
			logs := e.logs.String()
			assert.Contains(t, logs, "refreshed tokens could not be stored; retrying")
			assert.Contains(t, logs, errInjected.Error())

			require.NoError(t, e.portal.LinkContact(lead, 1, 10, true))
			res = e.clickRemoveOn(e.base, tab)
			ok, errs := refreshesSince(e, mark)
			if tc.persisted {
				assert.Equal(t, http.StatusOK, res.status)
				assert.Equal(t, 1, ok, "the stored pair is used, no second refresh")
				assert.Empty(t, errs)
				assert.NotContains(t, logs, "REFRESHED TOKENS LOST")
			} else {
				assert.Contains(t, logs, "REFRESHED TOKENS LOST")
				assert.Equal(t, http.StatusUnauthorized, res.status, "the lost pair ends the session: reopen")
				assert.Equal(t, 1, ok)
				// The stored access token died with the refresh and answers
				// invalid_token (recorded), which may be cured by a refresh:
				// the stored refresh token is tried once, refused, and the
				// session ends, so nothing keeps spending the dead grant.
				assert.Equal(t, []string{"invalid_grant"}, errs)
				res = e.clickRemoveOn(e.base, tab)
				assert.Equal(t, http.StatusUnauthorized, res.status)
				ok, errs = refreshesSince(e, mark)
				assert.Equal(t, 1, ok)
				assert.Equal(t, []string{"invalid_grant"}, errs, "no further refresh")
			}
		})
	}
}

// G5: the OAuth server hangs. Each click fails at its own deadline with
// "did not answer"; the refresh, bounded by its own timeout, ends and
// releases the lock; the next click works with one successful refresh.
func TestG5HangingRefresh(t *testing.T) {
	t.Parallel()
	for _, backend := range []struct {
		name string
		opts []envOption
	}{
		{"sqlite", nil},
		{"postgres", []envOption{withPostgres()}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			e, lead, tab := newTestTab(t, 3, append(backend.opts, withTimeout(time.Second), withOAuthTimeout(1200*time.Millisecond))...)
			mark := len(e.sim.Refreshes())
			e.sim.Advance(61 * time.Minute)
			e.sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Hang: true})

			start := time.Now()
			statuses := e.clickAll(tab, 3)
			elapsed := time.Since(start)
			for _, s := range statuses {
				assert.Equal(t, http.StatusBadGateway, s)
			}
			// The click's deadline is 1 s; a quarter of it is kept for reading
			// back an ambiguous delete, which a failed refresh never needs.
			assert.GreaterOrEqual(t, elapsed, 700*time.Millisecond, "waited until the deadline")
			assert.Less(t, elapsed, 1300*time.Millisecond, "and not longer")

			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			require.NoError(t, e.h.Drain(ctx), "the hung refresh ends at its own timeout")
			res := e.clickRemoveOn(e.base, tab)
			require.Equal(t, http.StatusOK, res.status, res.body)
			assert.Empty(t, e.portal.LeadContacts(lead))
			ok, _ := refreshesSince(e, mark)
			assert.Equal(t, 1, ok)
		})
	}
}

// G6: the first click hangs up while the refresh runs; the shared work
// completes, a click waiting alongside gets the result, and the new pair is
// stored (a later click does not refresh again).
func TestG6FirstCallerCancels(t *testing.T) {
	t.Parallel()
	e, lead, tab := newTestTab(t, 3)
	mark := len(e.sim.Refreshes())
	e.sim.Advance(61 * time.Minute)
	e.sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Delay: 400 * time.Millisecond})

	action, _ := tab.doc.Find("#remove-form").Attr("data-action")
	if action == "" {
		action, _ = tab.doc.Find("#remove-form").Attr("action")
	}
	ctxValue, _ := tab.doc.Find(`#remove-form input[name=ctx]`).Attr("value")
	e.remember(ctxValue)
	first, cancel := context.WithCancel(t.Context())
	firstErr := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(first, http.MethodPost, e.base+action,
			strings.NewReader(url.Values{"ctx": {ctxValue}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		firstErr <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel() // the user closed the tab mid-refresh
	res := e.clickRemoveOn(e.base, tab)
	require.Error(t, <-firstErr, "the first click was abandoned")
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Empty(t, e.portal.LeadContacts(lead))

	require.NoError(t, e.portal.LinkContact(lead, 1, 10, true))
	require.Equal(t, http.StatusOK, e.clickRemoveOn(e.base, tab).status)
	ok, errs := refreshesSince(e, mark)
	assert.Equal(t, 1, ok)
	assert.Empty(t, errs)
}

// G7: SQLite with many concurrent writers (sessions created by tab opens,
// token pairs written by refreshes): no SQLITE_BUSY reaches a user.
func TestG7SQLiteConcurrentWriters(t *testing.T) {
	t.Parallel()
	e := newInstalledEnv(t)
	e.portal.SetRateLimit(0, 0) // many requests at once: test the app, not the bucket
	mark := len(e.sim.Refreshes())
	const n = 12
	// One lead per tab: clicks on one lead by one user would share one
	// removal, and this test wants every session to write.
	leads := make([]int, n)
	for i := range leads {
		leads[i] = e.newLead(t, 1000+i, 2)
	}
	tabs := make([]page, n)
	var wg sync.WaitGroup
	for i := range tabs {
		wg.Go(func() { tabs[i] = e.openTab(2, leads[i], "en") })
	}
	wg.Wait()
	for _, tab := range tabs {
		require.Equal(t, http.StatusOK, tab.status, tab.body)
	}
	e.sim.Advance(61 * time.Minute)
	statuses := make([]int, n)
	for i := range tabs {
		wg.Go(func() { statuses[i] = e.clickRemoveOn(e.base, tabs[i]).status })
	}
	wg.Wait()
	assert.True(t, allOK(statuses), "statuses: %v", statuses)
	logs := strings.ToLower(e.logs.String())
	assert.NotContains(t, logs, "sqlite_busy")
	assert.NotContains(t, logs, "database is locked")
	ok, errs := refreshesSince(e, mark)
	assert.Equal(t, n, ok, "one refresh per session")
	assert.Empty(t, errs)
}

// newLead adds lead id with contacts contacts linked.
func (e *testEnv) newLead(t *testing.T, id, contacts int) int {
	t.Helper()
	e.portal.AddLead(simulator.Lead{ID: id, Title: "Lead " + strconv.Itoa(id), AssignedByID: 2})
	for c := 1; c <= contacts; c++ {
		require.NoError(t, e.portal.LinkContact(id, c, c*10, c == 1))
	}
	return id
}
