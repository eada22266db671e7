package handlers_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/testsync"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/postgres"
	"github.com/b24apps/leadcontacts/store/storetest"
)

// F5: the whole life of a portal — install, tab, removal, refresh of an
// expired token, every kind of upstream fault on REST and OAuth, forged
// and refused requests, and a panic inside a handler — leaves no secret in
// the app's logs, in gin's own output, in net/http's error log or in the
// database file. The secrets are the real ones of the run (AUTH_ID,
// REFRESH_ID, application tokens, tokens the OAuth server issued, the
// client secret, cookies and page contexts) plus planted sentinels.
func TestLogsStayCleanThroughEverything(t *testing.T) {
	// gin writes to these globals in its debug printing and default
	// middleware; the app uses neither, and this proves it. Restored after
	// the env's cleanup has stopped the server.
	var ginOut testsync.Buffer
	oldOut, oldErr := gin.DefaultWriter, gin.DefaultErrorWriter
	t.Cleanup(func() { gin.DefaultWriter, gin.DefaultErrorWriter = oldOut, oldErr })
	gin.DefaultWriter, gin.DefaultErrorWriter = &ginOut, &ginOut

	e, wire := newWiredEnv(t, withTimeout(2*time.Second), func(e *testEnv) {
		// A test-only route on the real engine, behind the real
		// middleware chain (recovery, logging, headers, CSRF).
		e.routes = func(g *gin.Engine) {
			g.Any("/test/panic", func(c *gin.Context) {
				_ = c.Request.ParseForm()
				panic("forced panic in a handler")
			})
		}
	})
	e.install()

	// A tab, then a removal with the frame's own token.
	lead := e.leadWithContacts(3)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	require.Equal(t, http.StatusOK, e.clickRemove(tab).status)
	cookie := appCookie(t, tab)
	e.remember(cookie.Value)

	// A removal after the access token expired: one refresh.
	tab = e.openTab(simulator.SeedSales, e.leadWithContacts(6), "en")
	e.expireAccessTokens()
	require.Equal(t, http.StatusOK, e.clickRemove(tab).status)

	// Upstream faults on the portal, each on a click.
	tab = e.openTab(simulator.SeedSales, e.leadWithContacts(1), "en")
	for _, f := range []simulator.Fault{
		{Method: "batch", Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"},
		{Method: "batch", Status: 502, RawBody: "<html><body>Bad Gateway " + testClientSecret + "</body></html>"},
		{Method: "batch", Hang: true},
		{Method: "batch", CloseConnection: true},
		{Method: "batch", Status: 401, Code: "expired_token", Description: "The access token provided has expired."},
	} {
		// Some of these end in success after a retry or a refresh; what
		// matters here is what they leave in the logs.
		e.portal.InjectFault(f)
		res := e.clickRemove(tab)
		assert.NotContains(t, res.body, testClientSecret)
	}
	// Faults at the OAuth server during a refresh.
	for _, f := range []simulator.Fault{
		{Method: "refresh_token", Status: 503, RawBody: "<html>unavailable</html>"},
		{Method: "refresh_token", CloseConnection: true},
		{Method: "refresh_token", Status: 400, Code: "invalid_grant", Description: "Invalid refresh token"},
	} {
		id := 9200 + len(e.portal.Calls())
		e.portal.AddLead(simulator.Lead{ID: id, Title: "Refresh fault"})
		require.NoError(t, e.portal.LinkContact(id, 1, 10, true))
		tab := e.openTab(simulator.SeedSales, id, "en")
		e.expireAccessTokens()
		e.sim.InjectOAuthFault(f)
		assert.NotEqual(t, http.StatusOK, e.clickRemove(tab).status, "%+v", f)
	}

	// Forged and refused requests that carry secrets.
	const (
		forgedAuth    = "SENTINEL-forged-auth-id-4f1c9"
		forgedRefresh = "SENTINEL-forged-refresh-4f1c9"
		forgedApp     = "SENTINEL-forged-app-token-4f1c9"
		queryAuth     = "SENTINEL-auth-in-query-8b2d"
		bodyRefresh   = "SENTINEL-refresh-in-body-8b2d"
		bearer        = "SENTINEL-bearer-8b2d"
		otherCookie   = "SENTINEL-other-cookie-8b2d"
	)
	e.remember(forgedAuth, forgedRefresh, forgedApp, queryAuth, bodyRefresh, bearer, otherCookie)
	f, err := e.portal.OpenLeadTab(simulator.SeedSales, lead, "en")
	require.NoError(t, err)
	f.Form.Set("AUTH_ID", forgedAuth)
	f.Form.Set("REFRESH_ID", forgedRefresh)
	assert.Equal(t, http.StatusForbidden, e.postFrame(f).status)
	f, err = e.portal.OpenLeadTab(simulator.SeedSales, lead, "en")
	require.NoError(t, err)
	f.Form.Set("APPLICATION_TOKEN", forgedApp)
	assert.Equal(t, http.StatusForbidden, e.postFrame(f).status)
	inst, err := e.portal.BeginInstall(simulator.SeedAdmin)
	require.NoError(t, err)
	inst.Form.Set("REFRESH_ID", forgedRefresh)
	assert.Equal(t, http.StatusForbidden, e.postFrame(inst).status)
	forged := e.uninstallForm(true)
	forged.Set("auth[application_token]", forgedApp)
	assert.Equal(t, http.StatusUnauthorized, e.postForm(e.base+"/events/uninstall", forged).status)
	ev := e.portal.OnAppInstallEvent(simulator.SeedAdmin)
	e.remember(ev.Get("auth[access_token]"), ev.Get("auth[refresh_token]"), ev.Get("auth[application_token]"))
	ev.Set("auth[refresh_token]", forgedRefresh)
	assert.Equal(t, http.StatusForbidden, e.postForm(e.base+"/events/install", ev).status)
	res := e.postForm(e.base+"/placements/lead-tab/remove?AUTH_ID="+queryAuth, url.Values{"ctx": {contextOf(tab)}, "REFRESH_ID": {bodyRefresh}},
		"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example", "Cookie", cookie.Name+"="+cookie.Value)
	assert.Equal(t, http.StatusForbidden, res.status)

	// A panic inside a handler, on a request full of secrets.
	mark := len(e.logs.String())
	jar := cookie.Name + "=" + cookie.Value + "; other=" + otherCookie
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		p := e.send(method, "/test/panic?AUTH_ID="+queryAuth,
			strings.NewReader(url.Values{"REFRESH_ID": {bodyRefresh}, "ctx": {contextOf(tab)}}.Encode()),
			"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin",
			"Cookie", jar, "Authorization", "Bearer "+bearer)
		assert.Equal(t, http.StatusInternalServerError, p.status)
		assertCommonHeaders(t, "panic", p.header)
		assert.Equal(t, []string{"'none'"}, csp(t, p.header)["frame-ancestors"])
		for _, s := range []string{cookie.Value, otherCookie, queryAuth, bodyRefresh, bearer, "Cookie"} {
			assert.NotContains(t, p.body, s, "the panic response echoes the request")
			for k, vs := range p.header {
				assert.NotContains(t, k+": "+strings.Join(vs, ", "), s, "the panic response echoes the request")
			}
		}
	}
	after := e.logs.String()[mark:]
	assert.Contains(t, after, "forced panic in a handler", "the panic was logged")
	assert.NotContains(t, after, "Cookie", "no request dump")

	// The run exercised what it claims: a refresh happened, faults were
	// logged, tokens were issued.
	assert.NotEmpty(t, wire.issuedTokens())
	logs := e.logs.String()
	for _, want := range []string{"QUERY_LIMIT_EXCEEDED", "request refused", "panic"} {
		assert.Contains(t, logs, want)
	}

	secrets := append(e.secretsSeen(), wire.issuedTokens()...)
	require.Greater(t, len(secrets), 20, "the sentinels were collected")
	db := e.dbFile()
	for _, s := range secrets {
		if len(s) < 8 {
			continue
		}
		assert.NotContains(t, logs, s, "a secret (%.4s…) in the app's logs", s)
		assert.NotContains(t, ginOut.String(), s, "a secret (%.4s…) in gin's output", s)
		assert.NotContains(t, string(db), s, "a secret (%.4s…) in the database file", s)
	}
	assert.Empty(t, ginOut.String(), "gin itself prints nothing")
}

// probe GETs a probe path and returns its status and body.
func (e *testEnv) probe(path string) (int, string) {
	p := e.send(http.MethodGet, path, nil)
	return p.status, p.body
}

// /readyz follows the database: 200 while it answers, 503 once the SQLite
// handle is closed. /healthz stays 200: the process lives, and restarting
// it would not bring the database back.
func TestReadyzFollowsSQLite(t *testing.T) {
	e := newTestEnv(t)
	status, body := e.probe("/readyz")
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, e.st.Close())
	status, body = e.probe("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, "database unavailable", body)
	status, _ = e.probe("/healthz")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, e.logs.String(), `"msg":"not ready"`)
	assert.Contains(t, e.logs.String(), "database is closed")
}

// On PostgreSQL behind a TCP relay: /readyz is 200, then 503 within its
// one-second deadline when the server hangs (accepts, never answers),
// then 503 at once when the server is stopped (connections reset, new
// ones refused), and 200 again when it is back.
func TestReadyzFollowsPostgreSQL(t *testing.T) {
	server, err := url.Parse(storetest.PostgresURL(t))
	require.NoError(t, err)
	relay := newRelay(t, server.Host)
	e := newTestEnv(t, func(e *testEnv) {
		var dsn string
		e.openStore = func(t testing.TB, keys *secret.Keyring) store.Store {
			if dsn == "" {
				u, err := url.Parse(storetest.FreshSchema(t, "handlers_"))
				require.NoError(t, err)
				u.Host = relay.addr()
				dsn = u.String()
			}
			st, err := postgres.Open(context.Background(), dsn, keys)
			require.NoError(t, err)
			return st
		}
	})
	status, body := e.probe("/readyz")
	require.Equal(t, http.StatusOK, status, body)

	relay.hang.Store(true)
	start := time.Now()
	status, body = e.probe("/readyz")
	took := time.Since(start)
	assert.Equal(t, http.StatusServiceUnavailable, status, body)
	assert.GreaterOrEqual(t, took, 900*time.Millisecond, "it waited for the database")
	assert.Less(t, took, 3*time.Second, "but not beyond its deadline")

	relay.stop()
	start = time.Now()
	status, _ = e.probe("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Less(t, time.Since(start), 2*time.Second)

	relay.hang.Store(false)
	relay.start()
	assert.Eventually(t, func() bool { s, _ := e.probe("/readyz"); return s == http.StatusOK },
		5*time.Second, 50*time.Millisecond, "ready again once the database is back")
}

// Draining: once StartDraining is called (main does on SIGTERM) /readyz
// says 503 whatever the database says, and every other route still works.
func TestReadyzWhileDraining(t *testing.T) {
	e := newTestEnv(t)
	e.h.StartDraining()
	status, body := e.probe("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, "draining", body)
	status, _ = e.probe("/healthz")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, http.StatusOK, e.install().status, "the app still serves while it drains")
}

// relay is a TCP relay in front of PostgreSQL that can hang (stop passing
// bytes) and be stopped and started again on the same address.
type relay struct {
	t      *testing.T
	target string // set before the relay starts
	hang   atomic.Bool

	mu    sync.Mutex
	port  string
	ln    net.Listener
	conns []net.Conn
}

func newRelay(t *testing.T, target string) *relay {
	r := &relay{t: t, target: target}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *relay) addr() string { return "127.0.0.1:" + r.port }

func (r *relay) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	ln, err := net.Listen("tcp", "127.0.0.1:"+r.port)
	if r.port == "" {
		require.NoError(r.t, err)
		_, r.port, _ = net.SplitHostPort(ln.Addr().String())
	}
	require.NoError(r.t, err)
	r.ln = ln
	go r.accept(ln)
}

func (r *relay) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		_ = r.ln.Close()
		r.ln = nil
	}
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
}

func (r *relay) track(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns = append(r.conns, c)
}

func (r *relay) accept(ln net.Listener) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		r.track(in)
		if r.hang.Load() {
			continue // accepted, never answered
		}
		out, err := net.Dial("tcp", r.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		r.track(out)
		go r.pump(out, in)
		go r.pump(in, out)
	}
}

// pump copies src to dst until either closes, dropping bytes while hung.
func (r *relay) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !r.hang.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = dst.Close()
			}
			return
		}
	}
}
