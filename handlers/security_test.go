package handlers_test

// Security tests that go through the real engine against the portal
// simulator (docs/security.md says what each protection is). Each names
// the checklist row it proves.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/testsync"
	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
)

// A4, A5: whatever DOMAIN and SERVER_ENDPOINT a placement POST claims, the
// app talks only to the portal endpoint it stored at install. The wire log
// sees every request the app makes (names included, before any DNS), and a
// counting server stands for a reachable attacker host.
func TestPlacementNeverCallsThePostedDomain(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	lead := e.leadWithContacts(3)
	var evilHits int
	evil := newCountingServer(t, &evilHits)
	evilHost := hostOf(t, evil)
	portalHost := hostOf(t, e.portal.URL())
	domains := []string{
		"evil.example",
		evilHost,
		"127.0.0.1",
		"[::1]",
		"169.254.169.254",
		"10.0.0.5:8080",
		e.portal.Domain() + ".evil.example",
		e.portal.Domain() + "@evil.example",
		"xn--80ak6aa92e.com", // punycode
		"пример.рф",          // raw IDN
		strings.ToUpper(e.portal.Domain()),
		e.portal.Domain() + ".",
		"evil.example/rest/?x=",
		"",
	}
	for _, domain := range domains {
		t.Run(fmt.Sprintf("DOMAIN=%q", domain), func(t *testing.T) {
			f, err := e.portal.OpenLeadTab(simulator.SeedSales, lead, "en")
			require.NoError(t, err)
			setQuery(t, &f, "DOMAIN", domain)
			f.Form.Set("SERVER_ENDPOINT", evil+"/rest/")
			mark := len(wire.requests())
			p := e.postFrame(f)
			require.Equal(t, http.StatusOK, p.status, p.body)
			assert.Equal(t, []string{portalHost}, wire.hosts(mark), "only the stored portal is called")
			assert.Equal(t, []string{e.portal.URL()}, csp(t, p.header)["frame-ancestors"], "framing follows the stored origin")
		})
	}
	assert.Zero(t, evilHits)
}

// A5, E3: an installer frame or ONAPPINSTALL naming another OAuth server is
// refused before anything is sent; the client secret only ever travels to
// the configured OAuth server's token endpoint, in a request body.
func TestClientSecretGoesOnlyToTheConfiguredOAuthServer(t *testing.T) {
	e, wire := newWiredEnv(t)
	var evilHits int
	evil := newCountingServer(t, &evilHits)
	oauthHost := hostOf(t, e.sim.OAuthURL())
	endpoints := []string{
		evil + "/rest/",
		evil,
		"https://oauth.bitrix.info.evil.example/rest/",
		"https://oauth.bitrix.info@evil.example/rest/",
		strings.Replace(e.sim.OAuthURL(), "http://", "http://user@", 1) + "/rest/",
		e.sim.OAuthURL() + "/evil/",
		strings.Replace(e.sim.OAuthURL(), "http://", "https://", 1) + "/rest/",
		"javascript:alert(1)",
		"",
	}
	for _, ep := range endpoints {
		t.Run(fmt.Sprintf("installer SERVER_ENDPOINT=%q", ep), func(t *testing.T) {
			f, err := e.portal.BeginInstall(simulator.SeedAdmin)
			require.NoError(t, err)
			f.Form.Set("SERVER_ENDPOINT", ep)
			mark := len(wire.requests())
			p := e.postFrame(f)
			assert.Equal(t, http.StatusForbidden, p.status, p.body)
			assert.Empty(t, wire.requests()[mark:], "nothing is sent anywhere")
		})
		t.Run(fmt.Sprintf("ONAPPINSTALL auth[server_endpoint]=%q", ep), func(t *testing.T) {
			form := e.portal.OnAppInstallEvent(simulator.SeedAdmin)
			e.remember(form.Get("auth[access_token]"), form.Get("auth[refresh_token]"), form.Get("auth[application_token]"))
			form.Set("auth[server_endpoint]", ep)
			mark := len(wire.requests())
			p := e.postForm(e.base+"/events/install", form)
			assert.Equal(t, http.StatusForbidden, p.status, p.body)
			assert.Empty(t, wire.requests()[mark:], "nothing is sent anywhere")
		})
	}
	_, err := e.st.Portal(context.Background(), e.portal.MemberID())
	require.ErrorIs(t, err, store.ErrNotFound, "nothing was installed")

	// The real install, then a refresh on an expired token: the secret
	// goes to the token endpoint only, never in a URL.
	e.install()
	tab := e.openTab(simulator.SeedSales, e.leadWithContacts(3), "en")
	e.expireAccessTokens()
	require.Equal(t, http.StatusOK, e.clickRemove(tab).status)
	sent := 0
	for _, r := range wire.requests() {
		assert.NotContains(t, r.Query, testClientSecret, "secret in a URL")
		assert.NotContains(t, r.Path, testClientSecret, "secret in a URL")
		if strings.Contains(r.Body, testClientSecret) {
			sent++
			assert.Equal(t, oauthHost, r.Host, "client secret sent to another host")
			assert.Equal(t, "/oauth/token/", r.Path)
		}
	}
	assert.GreaterOrEqual(t, sent, 2, "install and refresh both authenticate at the OAuth server")
	assert.Zero(t, evilHits)
}

// A2, A3, A6, A7: a placement POST that does not authenticate against
// stored state gets 403, costs no call (or only the verification call
// that fails), creates no session and renders nothing the portal may frame.
func TestPlacementAuthenticatesAgainstStoredState(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	lead := e.leadWithContacts(3)

	// Portal B is installed too: its tokens are real, just not A's.
	other := e.addInstalledPortal(t)
	fromB, err := other.OpenLeadTab(simulator.SeedSales, lead, "en")
	require.NoError(t, err)
	e.rememberFrame(fromB)

	// A portal row whose stored application token is empty (as after a
	// clean uninstall): the empty token must never match it.
	require.NoError(t, e.st.SavePortal(context.Background(), &store.Portal{
		MemberID: "m-empty-token", Domain: e.portal.Domain(), RESTEndpoint: e.portal.RESTEndpoint(),
		OAuthServer: e.sim.OAuthURL(), Scope: "crm,placement", Status: "F",
	}))

	appToken := e.portal.ApplicationToken()
	cases := []struct {
		name   string
		mutate func(f *simulator.Frame)
		calls  bool // the one verification batch is allowed (and fails)
	}{
		{name: "unknown member_id", mutate: func(f *simulator.Frame) { f.Form.Set("member_id", "0000unknown") }},
		{name: "application token missing", mutate: func(f *simulator.Frame) { f.Form.Del("APPLICATION_TOKEN") }},
		{name: "application token empty", mutate: func(f *simulator.Frame) { f.Form.Set("APPLICATION_TOKEN", "") }},
		{name: "application token one character longer", mutate: func(f *simulator.Frame) { f.Form.Set("APPLICATION_TOKEN", appToken+"0") }},
		{name: "application token one character shorter", mutate: func(f *simulator.Frame) { f.Form.Set("APPLICATION_TOKEN", appToken[:len(appToken)-1]) }},
		{name: "application token in another case", mutate: func(f *simulator.Frame) { f.Form.Set("APPLICATION_TOKEN", strings.ToUpper(appToken)) }},
		{name: "other portal's application token", mutate: func(f *simulator.Frame) { f.Form.Set("APPLICATION_TOKEN", other.ApplicationToken()) }},
		{name: "stored token empty, posted empty", mutate: func(f *simulator.Frame) {
			f.Form.Set("member_id", "m-empty-token")
			f.Form.Set("APPLICATION_TOKEN", "")
		}},
		{name: "stored token empty, posted anything", mutate: func(f *simulator.Frame) {
			f.Form.Set("member_id", "m-empty-token")
			f.Form.Set("APPLICATION_TOKEN", "x")
		}},
		{name: "AUTH_ID refused by the portal", calls: true, mutate: func(f *simulator.Frame) { f.Form.Set("AUTH_ID", "forged-auth-id-123") }},
		{name: "AUTH_ID of portal B with portal A's member_id and token", calls: true, mutate: func(f *simulator.Frame) {
			f.Form.Set("AUTH_ID", fromB.Form.Get("AUTH_ID"))
			f.Form.Set("REFRESH_ID", fromB.Form.Get("REFRESH_ID"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := e.portal.OpenLeadTab(simulator.SeedSales, lead, "en")
			require.NoError(t, err)
			tc.mutate(&f)
			sessions, mark := e.sessionRows(), len(wire.requests())
			p := e.postFrame(f)
			assert.Equal(t, http.StatusForbidden, p.status, p.body)
			assertPageHeaders(t, tc.name, p.header, "")
			assert.Empty(t, contextOf(p), "no page context for an unverified frame")
			assert.Equal(t, sessions, e.sessionRows(), "no session created")
			hosts := wire.hosts(mark)
			if tc.calls {
				// Only the verification batch, only to A's stored endpoint.
				assert.Equal(t, []string{hostOf(t, e.portal.URL())}, hosts)
				assert.Len(t, wire.requests()[mark:], 1)
			} else {
				assert.Empty(t, hosts, "no call before the frame is authenticated")
			}
		})
	}
}

// A8, A9: a malformed placement POST is refused with 400 before any call.
func TestPlacementOptionsRefusedThroughTheEngine(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	lead := e.leadWithContacts(3)
	cases := map[string]string{
		"not JSON":         `undefined`,
		"array":            `[{"ID":"1"}]`,
		"no ID":            `{"URI":"/crm/lead/details/1/"}`,
		"ID 0":             `{"ID":"0"}`,
		"ID -1":            `{"ID":-1}`,
		"ID 1e3":           `{"ID":"1e3"}`,
		"fullwidth digits": `{"ID":"１２"}`,
		"25 digits":        `{"ID":"1234567890123456789012345"}`,
		"ID object":        `{"ID":{"ID":1}}`,
		"duplicate keys":   `{"ID":"1","ID":"2"}`,
		"trailing data":    `{"ID":"1"}{"ID":"2"}`,
		"deep nesting":     `{"ID":"1","X":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
		"oversized":        `{"ID":"1","X":"` + strings.Repeat("a", 8000) + `"}`,
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := e.portal.OpenLeadTab(simulator.SeedSales, lead, "en")
			require.NoError(t, err)
			f.Form.Set("PLACEMENT_OPTIONS", opts)
			mark := len(wire.requests())
			p := e.postFrame(f)
			assert.Equal(t, http.StatusBadRequest, p.status, p.body)
			assert.NotEmpty(t, strings.TrimSpace(p.doc.Find(".alert").Text()), "a clear message")
			assert.Empty(t, wire.requests()[mark:], "no call")
		})
	}
	t.Run("another placement", func(t *testing.T) {
		f, err := e.portal.OpenLeadTab(simulator.SeedSales, lead, "en")
		require.NoError(t, err)
		f.Form.Set("PLACEMENT", "CRM_DEAL_DETAIL_TAB")
		mark := len(wire.requests())
		assert.Equal(t, http.StatusBadRequest, e.postFrame(f).status)
		assert.Empty(t, wire.requests()[mark:])
	})
}

// A10, C6: the entry and action routes act only on POST; GET (and HEAD,
// the console's URL check) answer the landing page, anything else is 405;
// every answer is a page that cannot be framed, and changes nothing.
func TestOtherMethodsChangeNothing(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	lead := e.leadWithContacts(3)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	ctx := contextOf(tab)
	e.remember(ctx)
	mark := len(wire.requests())
	for _, path := range []string{"/placements/lead-tab", "/placements/lead-tab/remove", "/events/install", "/events/uninstall"} {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			q := "?" + url.Values{"ctx": {ctx}}.Encode()
			p := e.send(method, path+q, strings.NewReader(url.Values{"ctx": {ctx}}.Encode()),
				"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin")
			if method == http.MethodGet {
				// A person who opens the address gets the landing page:
				// no page context, no form, nothing framed.
				assert.Equal(t, http.StatusOK, p.status, "%s %s", method, path)
				assert.Equal(t, 1, p.doc.Find("#install-steps").Length(), "%s %s: the landing page", method, path)
				assert.Zero(t, p.doc.Find("form, input[name=ctx]").Length(), "%s %s", method, path)
			} else {
				assert.Equal(t, http.StatusMethodNotAllowed, p.status, "%s %s", method, path)
			}
			assertPageHeaders(t, method+" "+path, p.header, "")
		}
	}
	assert.Len(t, e.portal.LeadContacts(lead), 3, "nothing deleted")
	assert.Empty(t, wire.requests()[mark:], "no call")
}

// A11: bodies are capped and parsed only as URL-encoded forms, on every
// route that reads a body: too large is 413 without reading it all, too
// many fields is 400, multipart (or any other type) is 415.
func TestBodyLimits(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	mark := len(wire.requests())
	routes := []string{"/install", "/placements/lead-tab", "/placements/lead-tab/remove", "/events/install", "/events/uninstall"}
	for _, path := range routes {
		t.Run(path, func(t *testing.T) {
			// 32 MiB that the server must not swallow: it answers after
			// the first 64 KiB, and the client stops sending.
			const huge = 32 << 20
			src := &countingReader{r: io.LimitReader(repeatReader('a'), huge)}
			start := time.Now()
			req, err := http.NewRequest(http.MethodPost, e.base+path, io.MultiReader(strings.NewReader("x="), src))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			} else {
				// The server may close the connection before the client
				// reads the 413: still refused, and fast.
				t.Logf("oversized body: %v", err)
			}
			assert.Less(t, time.Since(start), 5*time.Second, "refused quickly")
			assert.Less(t, src.n(), int64(huge/2), "the server did not read the whole body")

			fields := strings.TrimSuffix(strings.Repeat("f=1&", 10001), "&")
			require.Less(t, len(fields), 64<<10)
			p := e.send(http.MethodPost, path, strings.NewReader(fields),
				"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin")
			assert.Equal(t, http.StatusBadRequest, p.status, "10 001 form fields")

			for _, ct := range []string{"multipart/form-data; boundary=x", "application/json", "text/plain", ""} {
				body := "--x\r\nContent-Disposition: form-data; name=\"member_id\"\r\n\r\nm\r\n--x--\r\n"
				p := e.send(http.MethodPost, path, strings.NewReader(body), "Content-Type", ct, "Sec-Fetch-Site", "same-origin")
				assert.Equal(t, http.StatusUnsupportedMediaType, p.status, "Content-Type %q", ct)
			}
		})
	}
	assert.Empty(t, wire.requests()[mark:], "no call")
}

// countingReader counts what the app read of a request body (the client
// reads it on another goroutine).
type countingReader struct {
	r     io.Reader
	count atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.count.Add(int64(n))
	return n, err
}

func (c *countingReader) n() int64 { return c.count.Load() }

type repeatReader byte

func (b repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// B2, B4: the page context is the only authority for the action. A value
// the app minted for another purpose (the cookie), a context minted under
// another name, and a correctly signed context that names another lead,
// user or portal than its session are refused; form fields naming another
// lead are ignored.
func TestActionTrustsOnlyThePageContext(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	lead, otherLead := e.leadWithContacts(3), e.leadWithContacts(1)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	ctx := contextOf(tab)
	e.remember(ctx)
	cookie := appCookie(t, tab)
	e.remember(cookie.Value)
	pc := e.readContext(ctx)

	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for key, val := range pc {
			m[key] = val
		}
		m[k] = v
		return m
	}
	forged := map[string]string{
		"the cookie's value":              cookie.Value,
		"minted under another name":       e.mintContext("__Host-lcs", pc),
		"another lead than its session":   e.mintContext(pageContextName, with("l", otherLead)),
		"another user than its session":   e.mintContext(pageContextName, with("u", simulator.SeedViewer)),
		"another portal than its session": e.mintContext(pageContextName, with("m", "0000unknown")),
		"another session id":              e.mintContext(pageContextName, with("s", "not-a-session")),
		"a lead id of zero":               e.mintContext(pageContextName, with("l", 0)),
	}
	for name, v := range forged {
		t.Run(name, func(t *testing.T) {
			mark := len(wire.requests())
			p := e.postForm(e.base+"/placements/lead-tab/remove", url.Values{"ctx": {v}}, "Sec-Fetch-Site", "same-origin")
			assert.Contains(t, []int{http.StatusForbidden, http.StatusUnauthorized}, p.status, p.body)
			assert.Empty(t, wire.requests()[mark:], "no call")
		})
	}
	assert.Len(t, e.portal.LeadContacts(lead), 3)
	assert.Len(t, e.portal.LeadContacts(otherLead), 1)

	// Fields that name another lead do not move the action.
	p := e.postForm(e.base+"/placements/lead-tab/remove", url.Values{
		"ctx": {ctx}, "lead": {fmt.Sprint(otherLead)}, "ID": {fmt.Sprint(otherLead)}, "lead_id": {fmt.Sprint(otherLead)},
		"PLACEMENT_OPTIONS": {fmt.Sprintf(`{"ID":"%d"}`, otherLead)}, "member_id": {"0000unknown"},
	}, "Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusOK, p.status, p.body)
	assert.Empty(t, e.portal.LeadContacts(lead), "the context's lead was cleaned")
	assert.Len(t, e.portal.LeadContacts(otherLead), 1, "the other lead was not touched")
}

// B5: APP_SECRET rotation as an operator does it (APP_SECRET_PREVIOUS).
// During the overlap a context signed under the old key still passes its
// MAC: the click is answered 401 "session expired, reopen", not 403 —
// sessions are keyed by the current key's lookup digest, so the rotation
// ends open tabs on purpose (store.Store's documented design, at least as
// strict as the bar). A tab opened after the rotation works. Once the old
// key is retired, the old context no longer passes its MAC at all: 403.
func TestPageContextAcrossKeyRotation(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	lead := e.leadWithContacts(3)
	old := e.openTab(simulator.SeedSales, lead, "en")
	e.remember(contextOf(old))
	e.keys = mustKeyring(t, 2, 7) // APP_SECRET=new, APP_SECRET_PREVIOUS=old
	e.restart()
	// During the overlap the old context still verifies and its session
	// is still found: a rotation does not interrupt open tabs.
	p := e.clickRemove(old)
	require.Equal(t, http.StatusOK, p.status, p.body)
	assert.Empty(t, e.portal.LeadContacts(lead))
	others := e.portal.LeadContacts(e.leadWithContacts(1))
	require.NoError(t, e.portal.LinkContact(lead, others[0].ContactID, 10, true))

	fresh := e.openTab(simulator.SeedSales, lead, "en")
	require.Equal(t, http.StatusOK, fresh.status, fresh.body)
	freshCtx := contextOf(fresh)
	e.remember(freshCtx)

	// The portal row was sealed under the old key; a reinstall during the
	// overlap re-seals it (and re-hashes its application token) under the
	// new one, which is what lets the old key go. See TestKeyRotationEndToEnd.
	e.install()
	e.keys = mustKeyring(t, 2) // the old key is retired
	e.restart()
	mark := len(wire.requests())
	p = e.clickRemove(old)
	assert.Equal(t, http.StatusForbidden, p.status, "old context after retirement: MAC refused")
	assert.Empty(t, wire.requests()[mark:], "no call")
	assert.Len(t, e.portal.LeadContacts(lead), 1)

	// A context signed under the new key keeps working after retirement.
	p = e.clickRemove(fresh)
	require.Equal(t, http.StatusOK, p.status, p.body)
	assert.Empty(t, e.portal.LeadContacts(lead))
}

// B6: every Set-Cookie the app sends, on every kind of response, is the
// __Host- browser binding with all its attributes and a lifetime no longer
// than a session's.
func TestEverySetCookieIsAPartitionedHostCookie(t *testing.T) {
	e := newTestEnv(t)
	var pages []page
	collect := func(p page) page { pages = append(pages, p); return p }
	collect(e.install())
	lead := e.leadWithContacts(3)
	tab := collect(e.openTab(simulator.SeedSales, lead, "en"))
	collect(e.openTab(simulator.SeedSales, lead, "ru"))
	cookie := appCookie(t, tab)
	e.remember(cookie.Value)
	res := collect(e.clickRemove(tab))
	collect(e.postForm(e.base+"/placements/lead-tab", url.Values{}, "Cookie", cookie.Name+"=garbage", "Sec-Fetch-Site", "cross-site"))
	collect(e.postForm(e.base+"/placements/lead-tab/remove", url.Values{"ctx": {"junk"}}, "Cookie", cookie.Name+"=garbage", "Sec-Fetch-Site", "same-origin"))
	collect(e.send(http.MethodGet, "/nope", nil))
	collect(e.send(http.MethodGet, "/", nil))
	collect(e.clickRemove(res))
	f, err := e.portal.OpenLeadTab(simulator.SeedSales, lead, "en")
	require.NoError(t, err)
	e.rememberFrame(f)
	collect(e.postForm(f.URL, f.Form, "Cookie", cookie.Name+"=garbage", "Sec-Fetch-Site", "cross-site"))

	seen := 0
	for _, p := range pages {
		for _, sc := range p.header.Values("Set-Cookie") {
			seen++
			c, err := http.ParseSetCookie(sc)
			require.NoError(t, err, sc)
			require.NoError(t, c.Valid(), sc)
			e.remember(c.Value)
			assert.True(t, strings.HasPrefix(c.Name, "__Host-"), sc)
			assert.Equal(t, "/", c.Path, sc)
			assert.Empty(t, c.Domain, sc)
			assert.True(t, c.Secure, sc)
			assert.True(t, c.HttpOnly, sc)
			assert.True(t, c.Partitioned, "deletions too must be Partitioned: %s", sc)
			assert.Equal(t, http.SameSiteNoneMode, c.SameSite, sc)
			assert.LessOrEqual(t, c.MaxAge, int((2 * time.Hour).Seconds()), "no longer than a session: %s", sc)
			assert.NotZero(t, c.MaxAge, "a lifetime is set: %s", sc)
		}
	}
	assert.GreaterOrEqual(t, seen, 3)
}

// B7: a tampered or foreign cookie on the way in is treated as absent —
// the tab opens and the action works — and never causes a server error.
func TestTamperedCookieIsTreatedAsAbsent(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	good := appCookie(t, e.openTab(simulator.SeedSales, lead, "en"))
	e.remember(good.Value)
	for name, v := range map[string]string{
		"garbage":   "garbage",
		"bit flip":  flip(good.Value),
		"truncated": good.Value[:len(good.Value)/2],
		"empty":     "",
	} {
		t.Run(name, func(t *testing.T) {
			f, err := e.portal.OpenLeadTab(simulator.SeedSales, lead, "en")
			require.NoError(t, err)
			e.rememberFrame(f)
			tab := e.postForm(f.URL, f.Form, "Sec-Fetch-Site", "cross-site", "Origin", e.portal.URL(), "Cookie", good.Name+"="+v)
			require.Equal(t, http.StatusOK, tab.status, tab.body)
			assert.NotEmpty(t, tab.header.Values("Set-Cookie"), "a fresh binding is offered")
		})
	}
	assert.NotContains(t, e.logs.String(), `"level":"ERROR"`)
}

// C1, C2, C4: the action refuses cross-site requests whatever they carry —
// a valid cookie alone, or a valid cookie and a valid context — and
// nothing reaches the portal.
func TestCrossSiteActionIsRefusedEvenWithCredentials(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	lead := e.leadWithContacts(3)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	ctx, cookie := contextOf(tab), appCookie(t, tab)
	e.remember(ctx, cookie.Value)
	jar := cookie.Name + "=" + cookie.Value
	cases := []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"C1 cookie, no context, cross-site", url.Values{}, []string{"Cookie", jar, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}},
		{"C2 cookie and context, cross-site", url.Values{"ctx": {ctx}}, []string{"Cookie", jar, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}},
		{"C2 cookie and context, from the portal's own page", url.Values{"ctx": {ctx}}, []string{"Cookie", jar, "Sec-Fetch-Site", "cross-site", "Origin", e.portal.URL()}},
		{"C4 same-site", url.Values{"ctx": {ctx}}, []string{"Cookie", jar, "Sec-Fetch-Site", "same-site", "Origin", "http://127.0.0.2:1"}},
		{"C4 no fetch metadata, foreign Origin", url.Values{"ctx": {ctx}}, []string{"Cookie", jar, "Origin", "https://evil.example"}},
		{"C4 Origin null", url.Values{"ctx": {ctx}}, []string{"Cookie", jar, "Origin", "null"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mark := len(wire.requests())
			p := e.postForm(e.base+"/placements/lead-tab/remove", tc.form, tc.header...)
			assert.Equal(t, http.StatusForbidden, p.status)
			assertPageHeaders(t, tc.name, p.header, "")
			assert.Empty(t, wire.requests()[mark:], "no call")
		})
	}
	assert.Len(t, e.portal.LeadContacts(lead), 3)
	// C3: the same context, same-origin, works.
	res := e.postForm(e.base+"/placements/lead-tab/remove", url.Values{"ctx": {ctx}}, "Cookie", jar, "Sec-Fetch-Site", "same-origin", "Origin", e.base)
	assert.Equal(t, http.StatusOK, res.status, res.body)
}

// C5: CrossOriginProtection covers every state-changing route of the
// engine; only the exact paths Bitrix24 itself POSTs to cross-site (those
// app.json declares: installer, main page, placements, events, automation
// rules) are exempt.
// A trailing slash or an extra segment is not exempt. The route list comes
// from the engine itself, so a new route is covered the day it is added.
func TestCrossOriginProtectionExemptsExactPathsOnly(t *testing.T) {
	var routes gin.RoutesInfo
	e := newTestEnv(t, func(e *testEnv) { e.routes = func(g *gin.Engine) { routes = g.Routes() } })
	exempt := exemptPaths(t)
	require.Contains(t, exempt, "/placements/lead-tab")
	crossSite := []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}

	posts := 0
	for _, r := range routes {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
			continue
		}
		posts++
		p := e.send(r.Method, r.Path, strings.NewReader(""), append(crossSite, "Content-Type", "application/x-www-form-urlencoded")...)
		if _, ok := exempt[r.Path]; ok && r.Method == http.MethodPost {
			assert.NotEqual(t, http.StatusForbidden, p.status, "%s %s is a Bitrix24 entry point and must be exempt", r.Method, r.Path)
			continue
		}
		assert.Equal(t, http.StatusForbidden, p.status, "%s %s must refuse cross-site requests", r.Method, r.Path)
	}
	assert.Greater(t, posts, len(exempt), "the engine has protected routes besides the exempt ones")

	for path := range exempt {
		for _, variant := range []string{path + "/", path + "/x", path + "x", strings.ToUpper(path), path + "/remove/../"} {
			if _, ok := exempt[variant]; ok {
				continue
			}
			p := e.send(http.MethodPost, variant, strings.NewReader(""), append(crossSite, "Content-Type", "application/x-www-form-urlencoded")...)
			assert.Equal(t, http.StatusForbidden, p.status, "POST %s must not be exempt", variant)
		}
	}
}

// exemptPaths reads the paths Bitrix24 POSTs to from app.json.
func exemptPaths(t *testing.T) map[string]struct{} {
	t.Helper()
	m := readAppJSON(t)
	out := map[string]struct{}{m.Install: {}}
	if m.Handler != "" {
		out[m.Handler] = struct{}{}
	}
	for _, p := range m.Placements {
		out[p.Handler] = struct{}{}
	}
	for _, h := range m.Events {
		out[h] = struct{}{}
	}
	for _, r := range m.Robots {
		out[r.Handler] = struct{}{}
	}
	return out
}

// D1, D2: every HTML page — success, refusal, error, 404, 405, 413, 415,
// the installer and the description page — carries the full header set,
// with frame-ancestors naming the verified portal only on pages rendered
// after verification. Non-HTML responses still carry nosniff and the
// referrer policy. Served as https, every response adds HSTS.
func TestEveryPageCarriesTheSecurityHeaders(t *testing.T) {
	for _, https := range []bool{false, true} {
		t.Run(fmt.Sprintf("https=%v", https), func(t *testing.T) {
			var opts []envOption
			if https {
				opts = append(opts, func(e *testEnv) { e.publicBase = "https://contacts.example.com" })
			}
			e := newTestEnv(t, opts...)
			check := func(what string, p page, origin string) {
				t.Helper()
				assert.True(t, strings.HasPrefix(p.header.Get("Content-Type"), "text/html"), "%s: %s", what, p.header.Get("Content-Type"))
				assertPageHeaders(t, what, p.header, origin)
				assertHSTS(t, what, p.header, https)
			}
			form := []string{"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin"}
			check("GET /", e.send(http.MethodGet, "/", nil), "")
			check("GET /install", e.send(http.MethodGet, "/install", nil), "")
			check("404", e.send(http.MethodGet, "/nope", nil), "")
			check("405", e.send(http.MethodGet, "/placements/lead-tab/remove", nil), "")
			check("413", e.send(http.MethodPost, "/placements/lead-tab", strings.NewReader("x="+strings.Repeat("a", 70<<10)), form...), "")
			check("415", e.send(http.MethodPost, "/placements/lead-tab", strings.NewReader("{}"), "Content-Type", "application/json"), "")
			check("400 tab", e.send(http.MethodPost, "/placements/lead-tab", strings.NewReader(""), form...), "")
			check("403 csrf", e.send(http.MethodPost, "/placements/lead-tab/remove", strings.NewReader(""), "Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site"), "")
			check("403 context", e.send(http.MethodPost, "/placements/lead-tab/remove", strings.NewReader("ctx=x"), form...), "")

			f, err := e.portal.BeginInstall(simulator.SeedAdmin)
			require.NoError(t, err)
			bad := f
			bad.Form = cloneForm(f.Form)
			bad.Form.Set("REFRESH_ID", "forged-refresh-token-123")
			check("install refused", e.postFrame(bad), "")
			inst := e.postFrame(f)
			require.Equal(t, http.StatusOK, inst.status, inst.body)
			e.portal.FinishInstall()
			check("install", inst, e.portal.URL())

			lead := e.leadWithContacts(3)
			tf, err := e.portal.OpenLeadTab(simulator.SeedSales, lead, "en")
			require.NoError(t, err)
			tf.URL = e.base + "/placements/lead-tab?" + tf.Query.Encode() // the binding names the public URL
			tab := e.postFrame(tf)
			require.Equal(t, http.StatusOK, tab.status, tab.body)
			check("tab", tab, e.portal.URL())
			res := e.clickRemove(tab)
			check("remove result", res, e.portal.URL())

			asset, ok := tab.doc.Find(`link[rel=stylesheet]`).Attr("href")
			require.True(t, ok)
			for _, path := range []string{asset, "/healthz"} {
				resp, err := client.Get(e.base + path)
				require.NoError(t, err)
				resp.Body.Close()
				assertCommonHeaders(t, path, resp.Header)
				assertHSTS(t, path, resp.Header, https)
			}
		})
	}
}

func assertHSTS(t *testing.T, what string, h http.Header, https bool) {
	t.Helper()
	if https {
		assert.Equal(t, "max-age=63072000; includeSubDomains", h.Get("Strict-Transport-Security"), what)
	} else {
		assert.Empty(t, h.Get("Strict-Transport-Security"), "%s: no HSTS over plain http", what)
	}
}

func cloneForm(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// D3: portal data is text, never markup, script or a link target: quotes,
// tags and javascript: URLs in lead and contact fields render escaped, no
// attribute or inline script comes from them, and the only scripts are
// external files the CSP names.
func TestPortalDataCannotInjectMarkupOrScript(t *testing.T) {
	e := newInstalledEnv(t)
	e.portal.AddContact(simulator.Contact{ID: 9101, Name: `javascript:alert(1)`, LastName: `" onmouseover="alert(2)`, Post: `</script><script>alert(3)</script>`})
	e.portal.AddLead(simulator.Lead{ID: 9101, Title: `javascript:alert(4)//"'><svg onload=alert(5)>`})
	require.NoError(t, e.portal.LinkContact(9101, 9101, 10, true))
	p := e.openTab(simulator.SeedSales, 9101, "en")
	require.Equal(t, http.StatusOK, p.status, p.body)
	for _, doc := range []page{p, e.clickRemove(p)} {
		doc.doc.Find("*").Each(func(_ int, s *goquery.Selection) {
			for _, a := range s.Nodes[0].Attr {
				assert.False(t, strings.HasPrefix(strings.ToLower(a.Key), "on"), "event handler attribute %s=%q", a.Key, a.Val)
				assert.NotContains(t, strings.ToLower(strings.TrimSpace(a.Val)), "javascript:", "attribute %s=%q", a.Key, a.Val)
			}
		})
		// The app's own inline SVG icons are fine; one from the title is not.
		assert.Zero(t, doc.doc.Find("h1 svg, #contacts svg, title svg").Length())
		doc.doc.Find("script").Each(func(_ int, s *goquery.Selection) {
			src, ok := s.Attr("src")
			assert.True(t, ok && src != "", "inline script")
			assert.Empty(t, strings.TrimSpace(s.Text()), "inline script body")
		})
	}
	assert.Contains(t, p.doc.Find("#contacts").Text(), `javascript:alert(1)`, "shown as text")
	assert.Contains(t, p.doc.Find("h1").Text(), `<svg onload=alert(5)>`, "shown as text")
}

// E2: an uninstall event with another installed portal's genuine token is
// refused and changes nothing.
func TestUninstallWithAnotherPortalsTokenChangesNothing(t *testing.T) {
	e := newInstalledEnv(t)
	other := e.addInstalledPortal(t)
	before := e.mustPortal(t)

	form := e.uninstallForm(true)
	form.Set("auth[application_token]", other.ApplicationToken())
	e.remember(other.ApplicationToken())
	p := e.postForm(e.base+"/events/uninstall", form)
	assert.Equal(t, http.StatusUnauthorized, p.status)
	assert.True(t, e.mustPortal(t).Active())
	e.assertPortalUnchanged(t, before)
}

// E3: ONAPPINSTALL for an existing member_id with genuine tokens of another
// portal (the OAuth server vouches for them, but for another member_id)
// is refused; the stored application token stays.
func TestOnAppInstallWithAnotherPortalsTokensIsRefused(t *testing.T) {
	e := newInstalledEnv(t)
	before := e.mustPortal(t)
	other, err := e.sim.AddPortal(simulator.PortalOptions{Seed: true})
	require.NoError(t, err)
	_, err = other.Install(simulator.SeedAdmin)
	require.NoError(t, err)

	form := other.OnAppInstallEvent(simulator.SeedAdmin)
	e.remember(form.Get("auth[access_token]"), form.Get("auth[refresh_token]"), form.Get("auth[application_token]"))
	form.Set("auth[member_id]", e.portal.MemberID())
	form.Set("auth[domain]", e.portal.Domain())
	form.Set("auth[client_endpoint]", e.portal.RESTEndpoint())
	p := e.postForm(e.base+"/events/install", form)
	assert.Equal(t, http.StatusForbidden, p.status, p.body)
	e.assertPortalUnchanged(t, before)
	e.assertNotStored(t, other.MemberID())
}

// E4: Bitrix24 may deliver ONAPPINSTALL several times at once (and the
// installer page may race it): every delivery succeeds and one row exists.
func TestConcurrentInstallEventsMakeOneInstall(t *testing.T) {
	e := newTestEnv(t)
	_, err := e.portal.Install(simulator.SeedAdmin)
	require.NoError(t, err)
	forms := make([]url.Values, 5)
	for i := range forms {
		forms[i] = e.portal.OnAppInstallEvent(simulator.SeedAdmin)
		e.remember(forms[i].Get("auth[access_token]"), forms[i].Get("auth[refresh_token]"), forms[i].Get("auth[application_token]"))
	}
	statuses := testsync.AtOnce(len(forms), func(i int) int { return e.postForm(e.base+"/events/install", forms[i]).status })
	for i, s := range statuses {
		assert.Equal(t, http.StatusOK, s, "delivery %d", i)
	}
	var rows int
	require.NoError(t, e.rawDB().QueryRow(`SELECT count(*) FROM portals WHERE member_id = ?`, e.portal.MemberID()).Scan(&rows))
	assert.Equal(t, 1, rows)
	assert.Len(t, e.portal.Placements(), 2, "one tab and one list menu binding")
	assert.Equal(t, http.StatusOK, e.openTab(simulator.SeedSales, e.leadWithContacts(3), "en").status)
}

// E5: after an uninstall, nothing brings the portal back or acts for it:
// a replayed ONAPPINSTALL (its tokens were revoked), a placement POST, a
// click in a tab opened before.
func TestNothingWorksAfterUninstall(t *testing.T) {
	e, wire := newWiredEnv(t)
	e.install()
	lead := e.leadWithContacts(3)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	replay := e.portal.OnAppInstallEvent(simulator.SeedAdmin)
	e.remember(replay.Get("auth[access_token]"), replay.Get("auth[refresh_token]"), replay.Get("auth[application_token]"))
	frame, err := e.portal.OpenLeadTab(simulator.SeedSales, lead, "en")
	require.NoError(t, err)
	require.NoError(t, e.portal.Uninstall(context.Background(), false))

	p := e.postForm(e.base+"/events/install", replay)
	assert.Equal(t, http.StatusForbidden, p.status, "replayed ONAPPINSTALL")
	stored := e.mustPortal(t)
	assert.False(t, stored.Active(), "still uninstalled")

	mark := len(wire.requests())
	assert.Equal(t, http.StatusForbidden, e.postFrame(frame).status, "placement after uninstall")
	assert.Equal(t, http.StatusUnauthorized, e.clickRemove(tab).status, "click after uninstall")
	assert.Empty(t, wire.requests()[mark:], "no call")
	assert.Len(t, e.portal.LeadContacts(lead), 3)
}

// gin's trusted proxies are set explicitly (none): a client-supplied
// X-Forwarded-For never becomes the client address. The probe route is
// added to the real engine for the test only.
func TestForwardedForIsNotTrusted(t *testing.T) {
	e := newTestEnv(t, func(e *testEnv) {
		e.routes = func(g *gin.Engine) {
			g.GET("/test/client-ip", func(c *gin.Context) { c.String(http.StatusOK, c.ClientIP()) })
		}
	})
	p := e.send(http.MethodGet, "/test/client-ip", nil, "X-Forwarded-For", "203.0.113.9", "X-Real-IP", "203.0.113.9")
	assert.Equal(t, "127.0.0.1", p.body)
}
