package handlers_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

func TestRemoveAllContactsWithTheClickingUsersToken(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	f, err := e.portal.OpenLeadTab(2, lead, "en")
	require.NoError(t, err)
	tab := e.postFrame(f)
	require.Equal(t, http.StatusOK, tab.status, tab.body)

	mark := len(e.portal.Calls())
	res := e.clickRemove(tab)
	require.Equal(t, http.StatusOK, res.status, res.body)

	l, _ := e.portal.Lead(lead)
	assert.Equal(t, `3 contacts unlinked from lead “`+l.Title+`”. The contacts themselves stay in the CRM.`, strings.TrimSpace(res.doc.Find(".alert-success p").Eq(1).Text()))
	assert.Empty(t, e.portal.LeadContacts(lead))
	assert.Equal(t, "1", res.doc.Find("body").AttrOr("data-reload", ""), "the page asks Bitrix24 to reload the card")
	assert.True(t, res.doc.Find("#remove").Is("[disabled]"))
	assert.Equal(t, 1, res.doc.Find("#empty").Length())

	n, methods := batchRequests(e.portal, mark)
	assert.Equal(t, 1, n, "a click costs one request to the portal: %v", methods)
	deletes := e.portal.CallsTo("crm.lead.contact.items.delete")
	require.Len(t, deletes, 1)
	d := deletes[0]
	assert.Equal(t, 2, d.UserID, "the delete runs as the user who clicked")
	assert.Equal(t, f.Form.Get("AUTH_ID")[:4], d.TokenPrefix, "with the token of the frame that user opened")
	assert.Equal(t, []string{strconv.Itoa(lead)}, d.Params["id"])
	assert.Empty(t, d.Error)
}

func TestRemoveErrorsAreExplained(t *testing.T) {
	cases := []struct {
		name   string
		user   int
		lang   string
		fault  *simulator.Fault
		status int
		text   string
		code   string
		retry  bool
	}{
		{name: "no edit rights", user: 3, status: 403, text: "do not have permission", code: "ACCESS_DENIED"},
		{name: "lead gone", user: 2, fault: &simulator.Fault{Method: "crm.lead.contact.items.delete", Status: 400, Code: "NOT_FOUND", Description: "Not found."},
			status: 404, text: "no longer exists", code: "NOT_FOUND"},
		{name: "rate limited", user: 2, fault: &simulator.Fault{Method: "batch", Times: 3, Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"},
			status: 503, text: "too many requests", code: "QUERY_LIMIT_EXCEEDED", retry: true},
		{name: "operation time limit", user: 2, fault: &simulator.Fault{Method: "batch", Status: 429, Code: "OPERATION_TIME_LIMIT", Description: "Method is blocked due to operation time limit."},
			status: 429, text: "ten minutes", code: "OPERATION_TIME_LIMIT", retry: true},
		{name: "portal unreachable", user: 2, fault: &simulator.Fault{Method: "batch", CloseConnection: true},
			status: 502, text: "did not answer", retry: true},
		{name: "portal answers html", user: 2, fault: &simulator.Fault{Method: "batch", Status: 502, RawBody: "<html><body>Bad Gateway</body></html>"},
			status: 502, text: "did not answer", retry: true},
		{name: "anything else", user: 2, fault: &simulator.Fault{Method: "batch", Status: 500, Code: "INTERNAL_SERVER_ERROR", Description: "boom"},
			status: 502, text: "unexpected error", code: "INTERNAL_SERVER_ERROR", retry: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newInstalledEnv(t)
			lead := e.leadWithContacts(3)
			tab := e.openTab(tc.user, lead, "en")
			require.Equal(t, http.StatusOK, tab.status, tab.body)
			if tc.fault != nil {
				e.portal.InjectFault(*tc.fault)
			}
			res := e.clickRemove(tab)
			assert.Equal(t, tc.status, res.status)
			alert := res.doc.Find(".alert-danger")
			assert.Contains(t, alert.Text(), "The contacts were not unlinked")
			assert.Contains(t, alert.Text(), tc.text)
			if tc.code != "" {
				assert.Contains(t, alert.Find(".alert-code").Text(), tc.code)
			}
			assert.Len(t, e.portal.LeadContacts(lead), 3, "nothing was removed")
			assert.Equal(t, tc.retry, res.doc.Find("#remove:not([disabled])").Length() == 1, "retry offered")
			assert.Empty(t, res.doc.Find("body").AttrOr("data-reload", ""))
		})
	}
}

func TestRemoveRefreshesAnExpiredTokenOnce(t *testing.T) {
	e, lead, tab := newTestTab(t, 3)
	require.Equal(t, http.StatusOK, tab.status)
	refreshesBefore := len(e.sim.Refreshes())

	e.expireAccessTokens() // the frame's access token has expired
	res := e.clickRemove(tab)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Empty(t, e.portal.LeadContacts(lead))
	refreshes := e.sim.Refreshes()[refreshesBefore:]
	require.Len(t, refreshes, 1)
	assert.Equal(t, 200, refreshes[0].Status)
	assert.Equal(t, 2, refreshes[0].UserID, "the clicking user's refresh token, not the installer's")

	// The rotated pair was stored: the next click uses it without refreshing.
	others := e.portal.LeadContacts(e.leadWithContacts(1))
	require.NoError(t, e.portal.LinkContact(lead, others[0].ContactID, 10, true))
	res = e.clickRemove(res)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Len(t, e.sim.Refreshes(), refreshesBefore+1)
	assert.Empty(t, e.portal.LeadContacts(lead))
}

func TestRemoveWithADeadRefreshTokenAsksToReopen(t *testing.T) {
	e, lead, tab := newTestTab(t, 3)
	e.sim.Advance(181 * 24 * time.Hour) // refresh token expired as well
	e.clock.Advance(time.Hour)
	res := e.clickRemove(tab)
	assert.Equal(t, http.StatusUnauthorized, res.status)
	assert.Contains(t, res.doc.Find(".alert-danger").Text(), "session has expired")
	assert.Len(t, e.portal.LeadContacts(lead), 3)
}

func TestConcurrentClicksShareOneRefresh(t *testing.T) {
	e, lead, tab := newTestTab(t, 6)
	before := len(e.sim.Refreshes())
	e.expireAccessTokens()
	statuses := e.clickAll(tab, 8)
	assert.True(t, allOK(statuses), "statuses: %v", statuses)
	assert.Len(t, e.sim.Refreshes()[before:], 1, "single-use refresh token spent once")
	assert.Empty(t, e.portal.LeadContacts(lead))
}

func TestExpiredPageContextAsksToReopen(t *testing.T) {
	e, lead, tab := newTestTab(t, 3)
	e.clock.Advance(3 * time.Hour)
	mark := len(e.portal.Calls())
	res := e.clickRemove(tab)
	assert.Equal(t, http.StatusUnauthorized, res.status)
	assert.Contains(t, res.doc.Find(".alert").Text(), "session has expired")
	n, _ := batchRequests(e.portal, mark)
	assert.Zero(t, n)
	assert.Len(t, e.portal.LeadContacts(lead), 3)
}

func TestTamperedOrForeignContextIsRefused(t *testing.T) {
	e, lead, tab := newTestTab(t, 3)
	ctx := contextOf(tab)
	for name, v := range map[string]string{
		"empty":     "",
		"truncated": ctx[:len(ctx)/2],
		"bit flip":  flip(ctx),
		"junk":      "AAAA" + ctx[4:],
	} {
		t.Run(name, func(t *testing.T) {
			mark := len(e.portal.Calls())
			res := e.postForm(e.base+"/placements/lead-tab/remove", url.Values{"ctx": {v}}, "Sec-Fetch-Site", "same-origin")
			assert.Equal(t, http.StatusForbidden, res.status)
			n, _ := batchRequests(e.portal, mark)
			assert.Zero(t, n)
		})
	}
	assert.Len(t, e.portal.LeadContacts(lead), 3)
}

func flip(s string) string {
	b := []byte(s)
	i := len(b) / 3
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestCrossSitePostToTheActionIsRefused(t *testing.T) {
	e, lead, tab := newTestTab(t, 3)
	ctx := contextOf(tab)
	e.remember(ctx)
	for _, hdr := range [][]string{
		{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"},
		{"Sec-Fetch-Site", "same-site", "Origin", "https://evil.example"},
		{"Origin", "https://evil.example"},
		{"Origin", "null"},
	} {
		res := e.postForm(e.base+"/placements/lead-tab/remove", url.Values{"ctx": {ctx}}, hdr...)
		assert.Equal(t, http.StatusForbidden, res.status, hdr)
	}
	assert.Len(t, e.portal.LeadContacts(lead), 3)
}

func TestRemoveWorksWithoutCookiesAndChecksThemWhenPresent(t *testing.T) {
	e := newInstalledEnv(t)
	// No cookie jar at all (third-party cookies blocked): works.
	lead := e.leadWithContacts(3)
	tab := e.openTab(2, lead, "en")
	assert.NotEmpty(t, tab.header.Values("Set-Cookie"), "the cookie is offered")
	for _, sc := range tab.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(sc)
		require.NoError(t, err)
		require.NoError(t, c.Valid())
		assert.True(t, strings.HasPrefix(c.Name, "__Host-"))
		assert.True(t, c.Secure && c.HttpOnly && c.Partitioned)
		assert.Equal(t, http.SameSiteNoneMode, c.SameSite)
		assert.Equal(t, "/", c.Path)
		assert.Empty(t, c.Domain)
	}
	res := e.clickRemove(tab)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Empty(t, e.portal.LeadContacts(lead))

	// A cookie from another browser session than the page context: refused.
	lead = e.leadWithContacts(1)
	tabA := e.openTab(2, lead, "en")
	tabB := e.openTab(2, lead, "en")
	cookieB := tabB.header.Get("Set-Cookie")
	ctxA := contextOf(tabA)
	e.remember(ctxA)
	c, err := http.ParseSetCookie(cookieB)
	require.NoError(t, err)
	res = e.postForm(e.base+"/placements/lead-tab/remove", url.Values{"ctx": {ctxA}},
		"Sec-Fetch-Site", "same-origin", "Cookie", c.Name+"="+c.Value)
	assert.Equal(t, http.StatusForbidden, res.status)
	assert.Len(t, e.portal.LeadContacts(lead), 1)

	// A tampered cookie counts as absent.
	res = e.postForm(e.base+"/placements/lead-tab/remove", url.Values{"ctx": {ctxA}},
		"Sec-Fetch-Site", "same-origin", "Cookie", c.Name+"=garbage")
	assert.Equal(t, http.StatusOK, res.status)
	assert.Empty(t, e.portal.LeadContacts(lead))
}

func TestHangingPortalAnswersWithinTheRequestDeadline(t *testing.T) {
	e, _, tab := newTestTab(t, 3, withTimeout(time.Second))
	e.portal.InjectFault(simulator.Fault{Method: "batch", Hang: true})
	start := time.Now()
	res := e.clickRemove(tab)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, http.StatusBadGateway, res.status)
	assert.Contains(t, res.doc.Find(".alert-danger").Text(), "did not answer")
	assert.Equal(t, 1, res.doc.Find("#remove:not([disabled])").Length(), "retry offered")
}
