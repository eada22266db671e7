package main

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// Graceful shutdown finishes in-flight removals: a click is under way on a
// slow portal when run's context is canceled (SIGTERM); the removal
// completes, its answer reaches the user, run returns nil, and the server
// takes no new request meanwhile.
func TestShutdownFinishesInFlightRemovals(t *testing.T) {
	a := newAppProc(t)
	a.start()
	p := a.addInstalledPortal()
	tab := a.openSession(t, p, simulator.SeedLeadThreeContacts).tab

	p.InjectFault(simulator.Fault{Method: "batch", Delay: 1500 * time.Millisecond})
	var res appPage
	var clickErr error
	var wg sync.WaitGroup
	wg.Go(func() { res, clickErr = a.click(tab) })
	time.Sleep(300 * time.Millisecond) // the click is waiting on the portal

	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- a.stop() }()
	time.Sleep(200 * time.Millisecond)
	_, err := http.Get(a.base + "/healthz")
	assert.Error(t, err, "no new connections once shutdown began")

	wg.Wait()
	require.NoError(t, clickErr, "the in-flight click got its answer")
	assert.Equal(t, http.StatusOK, res.status, res.body)
	assert.Empty(t, p.LeadContacts(simulator.SeedLeadThreeContacts), "the removal completed")
	require.NoError(t, <-stopped, "run returns nil after a clean shutdown")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// Kill the app in the middle of a load run (SIGTERM: run's context is
// canceled) and start it again on the same database: no install and no
// token is lost. Clicks on many sessions with expired tokens are under way
// — their refreshes slowed down so that several are in flight at the
// kill — and afterwards every portal is still installed, every session
// still works, and the OAuth server never saw a spent refresh token again
// (no invalid_grant: no pair was lost), with one refresh per session in
// all.
func TestRestartMidLoadLosesNoInstallAndNoToken(t *testing.T) {
	a := newAppProc(t)
	a.start()
	portals := []*simulator.Portal{a.addInstalledPortal(), a.addInstalledPortal()}
	var sessions []session
	for i, p := range portals {
		for _, lead := range addLeads(t, p, 1000+100*i, 5, 2) {
			sessions = append(sessions, a.openSession(t, p, lead))
		}
	}
	mark := len(a.sim.Refreshes())
	a.sim.Advance(61 * time.Minute) // every session's access token has expired
	a.sim.InjectOAuthFault(simulator.Fault{Method: "refresh_token", Times: len(sessions), Delay: 400 * time.Millisecond})

	var wg sync.WaitGroup
	statuses := make([]int, len(sessions))
	for i, s := range sessions {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 40 * time.Millisecond) // a stream of clicks, not one burst
			if res, err := a.click(s.tab); err == nil {
				statuses[i] = res.status
			}
		})
	}
	time.Sleep(250 * time.Millisecond) // refreshes are in flight
	require.NoError(t, a.stop())
	wg.Wait()
	t.Logf("before the kill: %d of %d clicks completed; the others found the app gone", count(statuses, http.StatusOK), len(sessions))

	a.start()
	for _, p := range portals {
		tab, err := a.openTabOn(p, simulator.SeedSales, simulator.SeedLeadSixContacts)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, tab.status, "the install survived: %s", tab.body)
	}
	for _, s := range sessions {
		if len(s.p.LeadContacts(s.lead)) == 0 {
			require.NoError(t, s.p.LinkContact(s.lead, 3, 30, true))
		}
	}
	// All at once: the app's per-portal limiter spaces them out.
	for i, s := range sessions {
		wg.Go(func() {
			res, err := a.click(s.tab)
			if assert.NoError(t, err) {
				statuses[i] = res.status
				assert.Equal(t, http.StatusOK, res.status, "the session and its tokens survived: %s", res.body)
			}
		})
	}
	wg.Wait()
	for _, s := range sessions {
		assert.Empty(t, s.p.LeadContacts(s.lead))
	}
	ok, failed, codes := refreshOutcomes(a.sim, mark)
	assert.Zero(t, failed, "no refresh token was spent twice: %v", codes)
	assert.Equal(t, len(sessions), ok, "one refresh per session across both runs")
}

// Every request's context carries a deadline, whatever the route does.
func TestEveryRequestHasADeadline(t *testing.T) {
	var got time.Duration
	h := withDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dl, ok := r.Context().Deadline()
		require.True(t, ok)
		got = time.Until(dl)
	}), 17*time.Second)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	assert.InDelta(t, 17*time.Second, got, float64(time.Second))
	assert.Less(t, requestTimeout+2*time.Second, 20*time.Second, "answers within 20 s")
}
