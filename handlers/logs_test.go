package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/testsync"
	"github.com/b24apps/leadcontacts/simulator"
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
