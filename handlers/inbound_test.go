package handlers_test

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/simulator"
)

// fromAddr is an HTTP client whose requests come from another loopback
// address: an attacker who is not the genuine users.
func fromAddr(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func junk() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withJunk is a copy of a frame's form with a random value in one field:
// what an attacker who replays a genuine frame can vary.
func withJunk(f simulator.Frame, field string) url.Values {
	form := cloneForm(f.Form)
	form.Set(field, junk())
	return form
}

// postFrom posts a form cross-site from a client, with extra header pairs,
// and returns the status and the Retry-After header.
func postFrom(t *testing.T, c *http.Client, target string, form url.Values, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// flood posts n copies of a frame from a client, each with junk in one
// field, and counts the statuses; retry is the last Retry-After of a 429.
func flood(t *testing.T, c *http.Client, f simulator.Frame, field string, n int) (statuses map[int]int, retry string) {
	t.Helper()
	statuses = map[int]int{}
	for range n {
		st, ra := postFrom(t, c, f.URL, withJunk(f, field))
		statuses[st]++
		if st == http.StatusTooManyRequests {
			retry = ra
		}
	}
	return statuses, retry
}

// TestInboundBudgetsBoundTheOAuthRequests: junk installs from one address
// cost at most the install budget's burst in token requests; the rest
// get 429 with Retry-After, logged once per burst; other addresses and a
// genuine admin are not affected.
func TestInboundBudgetsBoundTheOAuthRequests(t *testing.T) {
	e := newTestEnv(t, withInboundScale(1)) // production budgets
	attacker := fromAddr(t, "127.0.0.2")
	f, err := e.portal.BeginInstall(simulator.SeedAdmin)
	require.NoError(t, err)
	e.rememberFrame(f)
	mark := len(e.sim.Refreshes())
	statuses, retry := flood(t, attacker, f, "REFRESH_ID", 30)
	assert.Equal(t, 5, statuses[http.StatusForbidden], "the portal's install burst reaches the OAuth server")
	assert.Equal(t, 25, statuses[http.StatusTooManyRequests])
	assert.Len(t, e.sim.Refreshes()[mark:], 5, "token requests carrying the client secret stay bounded")
	secs, err := strconv.Atoi(retry)
	require.NoError(t, err)
	assert.Positive(t, secs)
	logs := e.logs.String()
	assert.Equal(t, 2, strings.Count(logs, "inbound limit reached"), "logged once per burst and bucket: %s", logs)
	assert.Equal(t, 1, strings.Count(logs, `"by":"portal"`))
	assert.Equal(t, 1, strings.Count(logs, `"by":"ip"`))

	// Other member_ids from the same address: the per-address budget.
	statuses = map[int]int{}
	for range 15 {
		form := url.Values{"member_id": {junk()[:32]}, "AUTH_ID": {junk()}, "REFRESH_ID": {junk()},
			"APPLICATION_TOKEN": {junk()}, "SERVER_ENDPOINT": {e.sim.OAuthURL() + "/rest/"}, "PLACEMENT": {"DEFAULT"}}
		st, _ := postFrom(t, attacker, e.base+"/install", form)
		statuses[st]++
	}
	assert.Equal(t, 15, statuses[http.StatusTooManyRequests]+statuses[http.StatusForbidden])
	assert.Positive(t, statuses[http.StatusTooManyRequests], "the address's own budget")
	assert.LessOrEqual(t, len(e.sim.Refreshes()[mark:]), 10, "at most the address's burst in all")

	// The genuine admin, from another address, installs (after the
	// portal's budget drained a little).
	e.clock.Advance(10 * time.Second)
	p := e.postFrame(f)
	require.Equal(t, http.StatusOK, p.status, p.body)
}

// TestRefusedTokensAreNotSentAgain: the same junk refresh token or AUTH_ID
// sent again costs no second request to Bitrix24.
func TestRefusedTokensAreNotSentAgain(t *testing.T) {
	cases := []struct {
		field string
		frame func(e *testEnv) (simulator.Frame, error)
		// sent counts the requests that could check the field so far.
		sent func(e *testEnv) int
		msg  string
	}{
		{
			field: "AUTH_ID",
			frame: func(e *testEnv) (simulator.Frame, error) {
				return e.portal.OpenLeadTab(simulator.SeedSales, e.leadWithContacts(3), "en")
			},
			sent: func(e *testEnv) int { n, _ := batchRequests(e.portal, 0); return n },
			msg:  "one portal request for one junk AUTH_ID",
		},
		{
			field: "REFRESH_ID",
			frame: func(e *testEnv) (simulator.Frame, error) { return e.portal.BeginInstall(simulator.SeedAdmin) },
			sent:  func(e *testEnv) int { return len(e.sim.Refreshes()) },
			msg:   "one token request for one junk refresh token",
		},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			e := newInstalledEnv(t)
			f, err := tc.frame(e)
			require.NoError(t, err)
			e.rememberFrame(f)
			f.Form = withJunk(f, tc.field)
			mark := tc.sent(e)
			for range 3 {
				assert.Equal(t, http.StatusForbidden, e.postFrame(f).status)
			}
			assert.Equal(t, 1, tc.sent(e)-mark, tc.msg)
		})
	}
}

// TestFloodOfFramesCannotStarveAClick: with the production outbound limit
// (Bitrix24's bucket: burst 50, drain 2/s), a flood of frames carrying the portal's application
// token and junk AUTH_IDs takes only what is above the reserve, so a
// genuine click goes through within a short deadline.
func TestFloodOfFramesCannotStarveAClick(t *testing.T) {
	e := newTestEnv(t, withTimeout(2*time.Second), withREST(func(o *bitrix24.Options) {
		o.PortalRate, o.PortalBurst = bitrix24.DefaultPortalRate, bitrix24.DefaultPortalBurst
	}))
	e.install()
	lead := e.leadWithContacts(3)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	// Let the bucket refill after the install and the tab.
	time.Sleep(2500 * time.Millisecond)

	f, err := e.portal.OpenLeadTab(simulator.SeedViewer, lead, "en")
	require.NoError(t, err)
	e.rememberFrame(f)
	attacker := fromAddr(t, "127.0.0.3")
	var wg sync.WaitGroup
	for range 20 {
		form := withJunk(f, "AUTH_ID")
		wg.Go(func() { postFrom(t, attacker, f.URL, form) })
	}
	time.Sleep(100 * time.Millisecond) // the flood is in, holding the bucket
	res := e.clickRemove(tab)
	wg.Wait()
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Empty(t, e.portal.LeadContacts(lead))
}

// TestFrameBudgetPerAddressAndPortal: one address may spend at most a
// burst of 10 frames (then 1/s) on one portal, since each costs a request
// of the portal's outbound budget; other addresses are not affected, and
// the refusal is a page with Retry-After.
func TestFrameBudgetPerAddressAndPortal(t *testing.T) {
	e := newInstalledEnv(t, withInboundScale(1))
	lead := e.leadWithContacts(3)
	attacker := fromAddr(t, "127.0.0.4")
	f, err := e.portal.OpenLeadTab(simulator.SeedViewer, lead, "en")
	require.NoError(t, err)
	e.rememberFrame(f)
	statuses, retry := flood(t, attacker, f, "AUTH_ID", 12)
	assert.Equal(t, 10, statuses[http.StatusForbidden], "the pair's burst reaches verification")
	assert.Equal(t, 2, statuses[http.StatusTooManyRequests])
	assert.Equal(t, "1", retry)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	assert.Equal(t, http.StatusOK, tab.status, "a user elsewhere is not affected")
}

// TestBudgetsSeeTheClientBehindATrustedProxy: behind a reverse proxy named
// in TRUSTED_PROXIES, each client's X-Forwarded-For address has its own
// budget; anyone else's X-Forwarded-For is ignored, so a client cannot
// escape its budget by claiming other addresses.
func TestBudgetsSeeTheClientBehindATrustedProxy(t *testing.T) {
	e := newInstalledEnv(t, withInboundScale(1), func(e *testEnv) { e.trustedProxies = []string{"127.0.0.5"} })
	f, err := e.portal.OpenLeadTab(simulator.SeedViewer, e.leadWithContacts(3), "en")
	require.NoError(t, err)
	e.rememberFrame(f)
	send := func(c *http.Client, forwardedFor string) int {
		st, _ := postFrom(t, c, f.URL, withJunk(f, "AUTH_ID"), "X-Forwarded-For", forwardedFor)
		return st
	}
	proxy, stranger := fromAddr(t, "127.0.0.5"), fromAddr(t, "127.0.0.6")
	for i := range 12 {
		assert.Equal(t, http.StatusForbidden, send(proxy, "203.0.113."+strconv.Itoa(i+1)),
			"client %d behind the proxy has a budget of its own", i)
	}
	limited := 0
	for i := range 12 {
		if send(stranger, "198.51.100."+strconv.Itoa(i+1)) == http.StatusTooManyRequests {
			limited++
		}
	}
	assert.Equal(t, 2, limited, "an untrusted sender's X-Forwarded-For is ignored")
}
