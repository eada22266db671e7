package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// scrape GETs /metrics from the metrics listener and parses it.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := appClient.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// value is the counter, gauge or histogram count of the series of family
// name whose labels include want; it fails when no series matches, and
// sums when several do.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "no family %s in the scrape", name)
	var sum float64
	found := false
	for _, m := range f.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	require.True(t, found, "no series %s%v", name, want)
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// labelValues lists the values label takes in family name.
func labelValues(fams map[string]*dto.MetricFamily, name, label string) []string {
	var out []string
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out = append(out, l.GetValue())
			}
		}
	}
	return out
}

// The "done when": after install → tab → removal (plus a click
// on an expired token, a double click, a tab whose lead is gone and a
// stray URL), a scrape
// of the metrics listener finds every kind of series with the right
// labels and counts — REST calls equal to what the portal received — and
// the public port has no /metrics.
func TestMetricsAfterAFlow(t *testing.T) {
	a := newAppProc(t)
	maddr := freeAddr(t)
	a.env["METRICS_ADDR"] = maddr
	a.start()
	p := a.addInstalledPortal()

	lead := addLeads(t, p, 7100, 1, 3)[0]
	s := a.openSession(t, p, lead)
	pg, err := a.click(s.tab)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, pg.status, pg.body)
	require.Empty(t, p.LeadContacts(lead))

	// A click after the access token expired: one refresh.
	lead = addLeads(t, p, 7200, 1, 2)[0]
	s = a.openSession(t, p, lead)
	a.sim.Advance(2 * time.Hour)
	pg, err = a.click(s.tab)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, pg.status, pg.body)

	// A double click while the portal is slow: the second click joins the
	// first's removal.
	lead = addLeads(t, p, 7400, 1, 2)[0]
	s = a.openSession(t, p, lead)
	p.InjectFault(simulator.Fault{Method: "batch", Delay: 400 * time.Millisecond})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			pg, err := a.click(s.tab)
			assert.NoError(t, err)
			assert.Equal(t, http.StatusOK, pg.status)
		})
	}
	wg.Wait()

	// A tab whose lead is gone: its batch answers 200 with the lead's
	// command failed.
	p.InjectFault(simulator.Fault{Method: "crm.item.get", Status: http.StatusBadRequest, Code: "NOT_FOUND", Description: "Not found"})
	_, err = a.openTabOn(p, simulator.SeedSales, lead)
	require.NoError(t, err)

	// A stray URL, and the public port asked for the metrics.
	resp, _ := get(t, a.base+"/no/such/page/4711?q=1")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, body := get(t, a.base+"/metrics")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the public port serves no metrics")
	assert.NotContains(t, body, "leadcontacts_")

	fams := scrape(t, maddr)
	tab := "/placements/lead-tab"
	assert.Equal(t, 1.0, value(t, fams, "leadcontacts_http_requests_total", map[string]string{"route": "/install", "method": "POST", "status": "200"}))
	assert.Equal(t, 3.0, value(t, fams, "leadcontacts_http_requests_total", map[string]string{"route": tab, "method": "POST", "status": "200"}))
	assert.Equal(t, 4.0, value(t, fams, "leadcontacts_http_requests_total", map[string]string{"route": tab + "/remove", "method": "POST", "status": "200"}))
	assert.Equal(t, 4.0, value(t, fams, "leadcontacts_http_request_duration_seconds", map[string]string{"route": tab + "/remove", "method": "POST"}))
	assert.Equal(t, 2.0, value(t, fams, "leadcontacts_http_requests_total", map[string]string{"route": "unmatched", "method": "GET", "status": "404"}),
		"the stray URL and /metrics on the public port")
	for _, route := range labelValues(fams, "leadcontacts_http_requests_total", "route") {
		assert.True(t, route == "unmatched" || strings.HasPrefix(route, "/"), "route %q", route)
		assert.NotContains(t, route, "4711", "a raw path is never a label")
	}

	// Every REST request the portal received is counted, by method, and
	// nothing more: the counts are the portal's own.
	sent := map[string]float64{}
	for _, c := range p.Calls() {
		if !c.Batch {
			sent[c.Method]++
		}
	}
	counted := map[string]float64{}
	for _, m := range fams["leadcontacts_bitrix24_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "method" {
				counted[strings.ToLower(l.GetValue())] += m.GetCounter().GetValue()
			}
		}
	}
	assert.Equal(t, sent, counted)
	assert.Equal(t, 1.0, value(t, fams, "leadcontacts_bitrix24_requests_total", map[string]string{"method": "batch", "outcome": "expired_token"}))
	assert.GreaterOrEqual(t, value(t, fams, "leadcontacts_bitrix24_requests_total", map[string]string{"method": "batch", "outcome": "ok"}), 6.0)
	assert.Equal(t, sent["batch"], value(t, fams, "leadcontacts_bitrix24_request_duration_seconds", map[string]string{"method": "batch"}))
	assert.Equal(t, 1.0, value(t, fams, "leadcontacts_bitrix24_batch_command_errors_total", map[string]string{"method": "crm.item.get", "code": "NOT_FOUND"}))

	// The refreshes are the OAuth server's own count (the install's and
	// the expired click's); no flight shared, nothing refused.
	ok, failed, _ := refreshOutcomes(a.sim, 0)
	require.Equal(t, 2, ok)
	require.Zero(t, failed)
	assert.Equal(t, 2.0, value(t, fams, "leadcontacts_oauth_refreshes_total", map[string]string{"outcome": "ok"}))
	assert.Equal(t, 2.0, value(t, fams, "leadcontacts_oauth_refresh_duration_seconds", nil))
	assert.Equal(t, 1.0, value(t, fams, "leadcontacts_flights_coalesced_total", map[string]string{"kind": "removal"}))
	assert.Equal(t, 0.0, value(t, fams, "leadcontacts_flights_coalesced_total", map[string]string{"kind": "refresh"}))
	assert.Equal(t, 0.0, value(t, fams, "leadcontacts_bitrix24_limiter_refusals_total", map[string]string{"reason": "rate_limit"}))

	// The chores ran once, as jobs soon after start (River's leader
	// enqueues them); the pool is the SQLite one.
	require.Eventually(t, func() bool {
		_, ok := scrape(t, maddr)["leadcontacts_chore_last_success_timestamp_seconds"]
		return ok
	}, 20*time.Second, 50*time.Millisecond, "no chore ran")
	require.Eventually(t, func() bool {
		return len(scrape(t, maddr)["leadcontacts_chore_last_success_timestamp_seconds"].GetMetric()) == 4
	}, 20*time.Second, 50*time.Millisecond, "not every chore ran")
	fams = scrape(t, maddr)
	for _, chore := range []string{"sweep_sessions", "sweep_history"} {
		assert.Equal(t, 1.0, value(t, fams, "leadcontacts_chore_runs_total", map[string]string{"chore": chore, "outcome": "ok"}), chore)
		assert.Greater(t, value(t, fams, "leadcontacts_chore_last_success_timestamp_seconds", map[string]string{"chore": chore}), 0.0)
	}
	assert.GreaterOrEqual(t, value(t, fams, "go_sql_open_connections", map[string]string{"db_name": "sqlite"}), 1.0)
	assert.Contains(t, fams, "process_resident_memory_bytes")
}

// Each REST exchange yields exactly one log line: the lines equal the
// requests the portal received, method by method, and a batch whose
// command failed says which one and why, though it answered 200.
func TestOneLogLinePerRESTExchange(t *testing.T) {
	a := newAppProc(t)
	a.start()
	p := a.addInstalledPortal()
	lead := addLeads(t, p, 7300, 1, 3)[0]
	s := a.openSession(t, p, lead)
	a.sim.Advance(2 * time.Hour) // the click refreshes, then retries
	pg, err := a.click(s.tab)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, pg.status, pg.body)
	p.InjectFault(simulator.Fault{Method: "crm.item.get", Status: http.StatusBadRequest, Code: "NOT_FOUND", Description: "Not found"})
	_, err = a.openTabOn(p, simulator.SeedSales, lead)
	require.NoError(t, err)
	// Faults: a refused batch retried, and an unreachable one.
	p.InjectFault(simulator.Fault{Method: "batch", Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"})
	a.openSession(t, p, lead)

	sent := map[string]int{}
	for _, c := range p.Calls() {
		if !c.Batch {
			sent[c.Method]++
		}
	}
	logged := map[string]int{}
	var failed []any
	for _, l := range logLines(t, a.output()) {
		if l["msg"] != "bitrix24 rest" {
			continue
		}
		m, _ := l["method"].(string)
		logged[strings.ToLower(m)]++
		if f, ok := l["failed_commands"]; ok {
			failed = append(failed, f)
			assert.Equal(t, 200.0, l["status"])
		}
	}
	assert.Equal(t, sent, logged, "one line per request the portal received")
	assert.Greater(t, sent["batch"], 4)
	require.Len(t, failed, 1, "one batch had a failed command")
	assert.Equal(t, []any{map[string]any{"key": "lead", "method": "crm.item.get", "error_code": "NOT_FOUND"}}, failed[0])
}

// METRICS_ADDR is off by default, and never the public port.
func TestMetricsAddrConfig(t *testing.T) {
	base := map[string]string{
		"B24_CLIENT_ID": "app.1", "B24_CLIENT_SECRET": "s", "APP_BASE_URL": "https://contacts.example.com",
		"APP_SECRET": strings.Repeat("ab", 32),
	}
	for _, c := range []struct {
		addr, metrics string
		problem       bool
	}{
		{"", "", false},
		{"", "127.0.0.1:9090", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
		{"", ":8080", true},
		{":9000", "127.0.0.1:9000", true},
		{"", "9090", true},
		{"", "127.0.0.1:http", true},
	} {
		env := map[string]string{"ADDR": c.addr, "METRICS_ADDR": c.metrics}
		for k, v := range base {
			env[k] = v
		}
		cfg, err := loadConfig(func(k string) string { return env[k] })
		if c.problem {
			require.Error(t, err, "%+v", c)
			assert.Contains(t, err.Error(), "METRICS_ADDR")
			continue
		}
		require.NoError(t, err, "%+v", c)
		assert.Equal(t, c.metrics, cfg.MetricsAddr)
	}
}
