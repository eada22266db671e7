package main

// Issue 14's automation rule under a flood: a stage change of many leads
// at once fires one run each. Through the real app (run, River on SQLite)
// and the simulated portal at Bitrix24's budget (2 requests/s, burst 50),
// every run is answered at once (queued), worked in its turn within the
// portal's budget, and reported to its rule.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// TestRobotRunsOfAMassStageChangeAreQueued: 20 leads moved to Junk at once
// fire 20 runs; each is answered 200 before any work, then every lead's
// contacts are unlinked with the rule's user's token and every rule gets
// outcome "removed", with the portal never answering QUERY_LIMIT_EXCEEDED.
func TestRobotRunsOfAMassStageChangeAreQueued(t *testing.T) {
	a := newAppProc(t)
	a.start()
	p := a.addInstalledPortal()
	// Runs that come before the job engine has started are worked at once
	// (and would pass this test too): wait for the queue.
	require.Eventually(t, func() bool { return strings.Contains(a.output(), `"msg":"jobs started"`) }, 10*time.Second, 20*time.Millisecond)
	const n = 20
	leads := addLeads(t, p, 1000, n, 2)
	require.NoError(t, p.AddAutomation("JUNK", "leadcontacts_remove_all", simulator.SeedSales))

	mark := len(p.Calls())
	start := time.Now()
	for _, id := range leads {
		runs, err := p.MoveLead(context.Background(), simulator.SeedAdmin, id, "JUNK")
		require.NoError(t, err)
		require.Len(t, runs, 1)
		require.Equal(t, http.StatusOK, runs[0].Status, runs[0].Error)
	}
	delivered := time.Since(start)

	deadline := time.Now().Add(90 * time.Second)
	done := 0
	for time.Now().Before(deadline) {
		done = 0
		for _, r := range p.RobotRuns() {
			if r.Completed {
				done++
			}
		}
		if done == n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	require.Equal(t, n, done, "every rule got its answer\n%s", a.output())
	for _, r := range p.RobotRuns() {
		assert.Equal(t, map[string]string{"outcome": "removed", "count": "2"}, r.ReturnValues, "lead %d", r.LeadID)
	}
	for _, id := range leads {
		assert.Empty(t, p.LeadContacts(id), "lead %d", id)
	}
	requests, limited := 0, 0
	for _, c := range p.Calls()[mark:] {
		if !c.Batch {
			requests++
		}
		if c.Error == "QUERY_LIMIT_EXCEEDED" {
			limited++
		}
	}
	assert.Zero(t, limited, "the app's limiter keeps the runs within the portal's budget")
	for _, c := range p.CallsTo("crm.lead.contact.items.delete") {
		assert.Equal(t, simulator.SeedSales, c.UserID, "removed with the rule's user's token")
	}
	assert.NotContains(t, a.output(), "run not queued", "every run went through the queue")
	t.Logf("%d runs: all delivered (answered) in %s, all worked and reported in %s, %d requests to the portal",
		n, delivered.Round(time.Millisecond), took.Round(100*time.Millisecond), requests)
}
