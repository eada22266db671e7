package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// TestThirtyTabViewsAtOnceDoNotWait (issue 11): with the production
// settings, 30 people opening the tab of one portal at the same moment
// are all answered, and none of their requests to the portal waited on
// the app's own limiter: Bitrix24's bucket takes 50 at once, and so does
// the app's. The limiter's own accounting says so (the REST log line of a
// request that waited carries limit_wait_ms), and the portal refused none.
func TestThirtyTabViewsAtOnceDoNotWait(t *testing.T) {
	const views = 30
	a := newAppProc(t)
	a.start()
	p, err := a.sim.AddPortal(simulator.PortalOptions{Seed: true})
	require.NoError(t, err)
	a.installOn(p)
	leads := addLeads(t, p, 7000, views, 2)

	frames := make([]simulator.Frame, views)
	for i, lead := range leads {
		frames[i], err = p.OpenLeadTab(simulator.SeedSales, lead, "en")
		require.NoError(t, err)
	}
	logMark, callMark := len(a.output()), len(p.Calls())
	start := make(chan struct{})
	status := make([]int, views)
	var wg sync.WaitGroup
	for i, f := range frames {
		// People, each at an address of their own, as the app's inbound
		// budgets expect of browsers.
		c := attackerClient(fmt.Sprintf("127.0.2.%d", i+1))
		wg.Go(func() {
			<-start
			pg, err := postPage(c, f.URL, f.Form, "Sec-Fetch-Site", "cross-site", "Origin", p.URL())
			if assert.NoError(t, err) {
				status[i] = pg.status
			}
		})
	}
	close(start)
	wg.Wait()
	for i, s := range status {
		assert.Equal(t, http.StatusOK, s, "tab view %d", i)
	}

	batches := 0
	for _, line := range strings.Split(a.output()[logMark:], "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "bitrix24 rest" {
			continue
		}
		if rec["method"] == "batch" {
			batches++
		}
		assert.NotContains(t, rec, "limit_wait_ms", "a request waited on the limiter: %s", line)
	}
	assert.Equal(t, views, batches, "one batch per tab view, each logged")
	for _, c := range p.Calls()[callMark:] {
		assert.NotEqual(t, "QUERY_LIMIT_EXCEEDED", c.Error, "the portal's bucket refused %s", c.Method)
	}
}
