package handlers_test

import (
	"encoding/json"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// The benchmarks of this file put the app next to a baseline: a bare gin
// handler that makes only the portal call a view or a click needs, with
// the same commands, and renders a minimal page. Both run against the
// same simulator over loopback, driven by the same client, so the ratio
// of their CPU per operation is the app's own cost: everything it does
// beyond the necessary (verification against the store, the session, the
// page context, the full page). portal-only is the portal call alone,
// made by the benchmark itself: what neither side can avoid.
//
//	go test -run '^$' -bench 'Tab|Click' -benchmem ./handlers/
//
// cpu-ns/op is the process's CPU (user + system) per operation, from
// getrusage around the timed part only: app, simulator and client
// together, which is why the baseline and portal-only are in the same run.

// cpuMeter adds up the process's CPU time over the timed parts of a
// benchmark.
type cpuMeter struct {
	total time.Duration
	from  time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (m *cpuMeter) start(b *testing.B) { m.from = processCPU(); b.StartTimer() }
func (m *cpuMeter) stop(b *testing.B)  { b.StopTimer(); m.total += processCPU() - m.from }

func (m *cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(m.total.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// benchClient is a pooled client that reads answers without parsing them.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

func benchPost(b *testing.B, target string, form url.Values, header ...string) (int, []byte) {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// tabBatch is the tab's portal call: the same five commands the app sends.
func tabBatch(auth string, leadID string) url.Values {
	return url.Values{
		"auth": {auth}, "halt": {"0"},
		"cmd[app]":   {"app.info"},
		"cmd[me]":    {"profile"},
		"cmd[lead]":  {"crm.item.get?entityTypeId=1&id=" + leadID},
		"cmd[items]": {"crm.lead.contact.items.get?id=" + leadID},
		"cmd[names]": {"crm.contact.list?" + url.Values{
			"filter[@ID]": {"$result[lead][item][contactIds]"},
			"select[0]":   {"ID"}, "select[1]": {"NAME"}, "select[2]": {"SECOND_NAME"},
			"select[3]": {"LAST_NAME"}, "select[4]": {"POST"},
		}.Encode()},
	}
}

// clickBatch is the click's portal call: read the links, delete them.
func clickBatch(auth, leadID string) url.Values {
	return url.Values{
		"auth": {auth}, "halt": {"1"},
		"cmd[before]": {"crm.lead.contact.items.get?id=" + leadID},
		"cmd[delete]": {"crm.lead.contact.items.delete?id=" + leadID},
	}
}

var bareTab = template.Must(template.New("t").Parse(
	`<!doctype html><title>{{.Title}}</title><ul>{{range .Names}}<li>{{.NAME}} {{.LAST_NAME}}</li>{{end}}</ul>`))

// newBareHandler serves the baseline: POST /tab with a frame's fields, and
// POST /click with the lead and the token.
func newBareHandler(b *testing.B, endpoint string) string {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	call := func(form url.Values) (map[string]json.RawMessage, bool) {
		resp, err := benchClient.PostForm(endpoint+"batch.json", form)
		if err != nil {
			return nil, false
		}
		defer resp.Body.Close()
		var out struct {
			Result struct {
				Result map[string]json.RawMessage `json:"result"`
			} `json:"result"`
		}
		return out.Result.Result, json.NewDecoder(resp.Body).Decode(&out) == nil && resp.StatusCode == http.StatusOK
	}
	r.POST("/tab", func(c *gin.Context) {
		var opts struct{ ID string }
		_ = json.Unmarshal([]byte(c.PostForm("PLACEMENT_OPTIONS")), &opts)
		res, ok := call(tabBatch(c.PostForm("AUTH_ID"), opts.ID))
		if !ok {
			c.Status(http.StatusBadGateway)
			return
		}
		var page struct {
			Title string
			Names []map[string]any
		}
		var lead struct{ Item struct{ Title string } }
		_ = json.Unmarshal(res["lead"], &lead)
		_ = json.Unmarshal(res["names"], &page.Names)
		page.Title = lead.Item.Title
		c.Status(http.StatusOK)
		_ = bareTab.Execute(c.Writer, page)
	})
	r.POST("/click", func(c *gin.Context) {
		res, ok := call(clickBatch(c.PostForm("auth"), c.PostForm("lead")))
		if !ok {
			c.Status(http.StatusBadGateway)
			return
		}
		var before []map[string]any
		_ = json.Unmarshal(res["before"], &before)
		c.String(http.StatusOK, "<!doctype html><p>%d contacts removed</p>", len(before))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// benchEnv is a running app with a lead of three contacts, its portal's
// rate limit off (the benchmarks measure CPU, not the leaky bucket).
func benchEnv(b *testing.B) (*testEnv, int) {
	e := newInstalledEnv(b)
	e.portal.SetRateLimit(0, 0)
	return e, e.leadWithContacts(3)
}

// request is one POST a benchmark times: where, what, with which headers.
type request struct {
	target string
	form   url.Values
	header []string
}

// measure times b.N requests, each prepared by next outside the timed part,
// and reports cpu-ns/op and allocations beside ns/op. Every answer must be
// 200 and contain want.
func measure(b *testing.B, next func() request, want string) {
	var m cpuMeter
	b.ReportAllocs()
	b.StopTimer()
	for range b.N {
		r := next()
		m.start(b)
		status, body := benchPost(b, r.target, r.form, r.header...)
		m.stop(b)
		if status != http.StatusOK || !strings.Contains(string(body), want) {
			b.Fatalf("status %d: %s", status, body)
		}
	}
	m.report(b)
}

// BenchmarkTab opens the lead tab: through the app, through the bare
// baseline, and as the portal call alone.
func BenchmarkTab(b *testing.B) {
	// frame opens a fresh frame of the lead, as the portal would post it.
	frame := func(b *testing.B, e *testEnv, lead int) simulator.Frame {
		f, err := e.portal.OpenLeadTab(2, lead, "en")
		require.NoError(b, err)
		return f
	}
	b.Run("app", func(b *testing.B) {
		e, lead := benchEnv(b)
		measure(b, func() request {
			f := frame(b, e, lead)
			return request{f.URL, f.Form, []string{"Sec-Fetch-Site", "cross-site", "Origin", e.portal.URL()}}
		}, "")
	})
	b.Run("baseline", func(b *testing.B) {
		e, lead := benchEnv(b)
		bare := newBareHandler(b, e.portal.RESTEndpoint())
		measure(b, func() request {
			return request{target: bare + "/tab", form: frame(b, e, lead).Form}
		}, "<li>")
	})
	b.Run("portal-only", func(b *testing.B) {
		e, lead := benchEnv(b)
		measure(b, func() request {
			auth := frame(b, e, lead).Form.Get("AUTH_ID")
			return request{target: e.portal.RESTEndpoint() + "batch.json", form: tabBatch(auth, strconv.Itoa(lead))}
		}, "")
	})
}

// relink puts the lead's contacts back, outside the timed part.
func relink(b *testing.B, p *simulator.Portal, lead int, links []simulator.LeadContact) {
	for _, l := range links {
		require.NoError(b, p.LinkContact(lead, l.ContactID, l.Sort, l.Primary))
	}
}

// BenchmarkClick removes the lead's three contacts: through the app,
// through the bare baseline, and as the portal call alone. Each round
// links them again first, untimed.
func BenchmarkClick(b *testing.B) {
	// clicks times req after relinking the contacts of a fresh env's lead.
	clicks := func(b *testing.B, req func(e *testEnv, lead int) request, want string) {
		e, lead := benchEnv(b)
		links := e.portal.LeadContacts(lead)
		r := req(e, lead)
		measure(b, func() request {
			relink(b, e.portal, lead, links)
			return r
		}, want)
	}
	b.Run("app", func(b *testing.B) {
		clicks(b, func(e *testEnv, lead int) request {
			tab := e.openTab(2, lead, "en")
			action, _ := tab.doc.Find("#remove-form").Attr("data-action")
			ctx, _ := tab.doc.Find(`#remove-form input[name=ctx]`).Attr("value")
			return request{e.base + action, url.Values{"ctx": {ctx}}, []string{"Sec-Fetch-Site", "same-origin", "Origin", e.base}}
		}, "")
	})
	b.Run("baseline", func(b *testing.B) {
		clicks(b, func(e *testEnv, lead int) request {
			bare := newBareHandler(b, e.portal.RESTEndpoint())
			token := e.portal.IssueTokens(2).AccessToken
			return request{target: bare + "/click", form: url.Values{"auth": {token}, "lead": {strconv.Itoa(lead)}}}
		}, "3 contacts removed")
	})
	b.Run("portal-only", func(b *testing.B) {
		clicks(b, func(e *testEnv, lead int) request {
			token := e.portal.IssueTokens(2).AccessToken
			return request{target: e.portal.RESTEndpoint() + "batch.json", form: clickBatch(token, strconv.Itoa(lead))}
		}, "")
	})
}
