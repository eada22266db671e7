package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
)

// submit posts a form of a page (by CSS selector) as the browser would:
// same origin, with its hidden page context.
func (e *testEnv) submit(p page, form string) page {
	e.t.Helper()
	f := p.doc.Find(form)
	require.Equal(e.t, 1, f.Length(), "no %s on the page: %s", form, p.body)
	action, _ := f.Attr("action")
	return e.postForm(e.base+action, e.fields(f), "Sec-Fetch-Site", "same-origin", "Origin", e.base)
}

// fields are a form's hidden fields, as a browser posts them (the page
// context and the list the page shows); the context is remembered as a
// secret that must never be logged.
func (e *testEnv) fields(f *goquery.Selection) url.Values {
	e.t.Helper()
	v := url.Values{}
	f.Find(`input[type=hidden]`).Each(func(_ int, in *goquery.Selection) {
		v.Add(in.AttrOr("name", ""), in.AttrOr("value", ""))
	})
	e.remember(v.Get("ctx"))
	return v
}

func (e *testEnv) history() []store.HistoryEntry {
	e.t.Helper()
	h, err := e.st.History(context.Background(), e.portal.MemberID(), 100)
	require.NoError(e.t, err)
	return h
}

func text(p page, sel string) string {
	return strings.Join(strings.Fields(p.doc.Find(sel).Text()), " ")
}

func TestRemovalWithoutJavaScriptConfirmsOnASecondPage(t *testing.T) {
	e, lead, tab := newTestTab(t, 3)
	action, _ := tab.doc.Find("#remove-form").Attr("action")
	assert.Equal(t, "/placements/lead-tab/confirm?LANG=en", action, "without JS the form asks first")
	assert.Equal(t, "/placements/lead-tab/remove?LANG=en", tab.doc.Find("#remove-form").AttrOr("data-action", ""))

	confirm := e.submit(tab, "#remove-form")
	require.Equal(t, http.StatusOK, confirm.status, confirm.body)
	assert.Equal(t, "Unlink 3 contacts from this lead? The contacts themselves stay in the CRM.", text(confirm, "#confirm-text"))
	assert.Equal(t, "/placements/lead-tab/remove?LANG=en", confirm.doc.Find("#confirm-form").AttrOr("action", ""))
	assert.Equal(t, "/placements/lead-tab/view?LANG=en", confirm.doc.Find("#cancel-form").AttrOr("action", ""))
	assert.Len(t, e.portal.LeadContacts(lead), 3, "asking changes nothing")

	back := e.submit(confirm, "#cancel-form")
	require.Equal(t, http.StatusOK, back.status, back.body)
	assert.Equal(t, 3, back.doc.Find("#contacts li").Length(), "Cancel returns to the tab")
	assert.Len(t, e.portal.LeadContacts(lead), 3)

	done := e.submit(e.submit(back, "#remove-form"), "#confirm-form")
	require.Equal(t, http.StatusOK, done.status, done.body)
	assert.Contains(t, text(done, ".alert-success"), "3 contacts unlinked")
	assert.Empty(t, e.portal.LeadContacts(lead))

	// State changes stay POST-only and same-origin: a GET is the landing.
	landing := e.send(http.MethodGet, "/placements/lead-tab/confirm", nil)
	assert.Equal(t, http.StatusOK, landing.status)
	assert.Equal(t, 3, landing.doc.Find("#install-steps li").Length())
	for _, route := range []string{"confirm", "view", "undo"} {
		ctx, _ := tab.doc.Find(`#remove-form input[name=ctx]`).Attr("value")
		p := e.postForm(e.base+"/placements/lead-tab/"+route, url.Values{"ctx": {ctx}}, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
		assert.Equal(t, http.StatusForbidden, p.status, route)
		p = e.postForm(e.base+"/placements/lead-tab/"+route, url.Values{"ctx": {"forged"}}, "Sec-Fetch-Site", "same-origin", "Origin", e.base)
		assert.Equal(t, http.StatusForbidden, p.status, route)
	}
}

func TestUndoRestoresTheSameLinksWithTheSameUsersToken(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	before := e.portal.LeadContacts(lead)
	res := e.clickRemove(e.openTab(2, lead, "en"))
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Contains(t, text(res, "#next-steps"), "You can undo this for 10 minutes.")

	// An hour later the frame's token has expired: the undo refreshes it
	// with the same user's refresh token, as the removal would.
	e.expireAccessTokens()
	refreshes := len(e.sim.Refreshes())
	mark := len(e.portal.Calls())
	undone := e.submit(res, "#undo-form")
	require.Equal(t, http.StatusOK, undone.status, undone.body)
	assert.Contains(t, text(undone, ".alert-success"), "3 contacts are linked to lead")
	assert.Equal(t, before, e.portal.LeadContacts(lead), "same contacts, SORT and primary")
	assert.Equal(t, 3, undone.doc.Find("#contacts li").Length())
	assert.Equal(t, "1", undone.doc.Find("body").AttrOr("data-reload", ""))
	require.Len(t, e.sim.Refreshes(), refreshes+1)
	assert.Equal(t, 2, e.sim.Refreshes()[refreshes].UserID)
	var set []simulator.Call
	for _, c := range e.portal.Calls()[mark:] {
		if c.Method == "crm.lead.contact.items.set" {
			set = append(set, c)
		}
	}
	require.Len(t, set, 1)
	assert.Equal(t, 2, set[0].UserID, "the clicking user's rights")

	h := e.history()
	require.Len(t, h, 2)
	assert.Equal(t, store.ActionUndo, h[0].Action)
	assert.Equal(t, store.OutcomeOK, h[0].Outcome)
	assert.Equal(t, store.ActionRemove, h[1].Action)
	assert.ElementsMatch(t, []int64{1, 2, 3}, h[1].ContactIDs)
	assert.EqualValues(t, 2, h[1].UserID)

	// Undone once: the snapshot is gone.
	again := e.submit(res, "#undo-form")
	assert.Contains(t, text(again, ".alert-warning"), "Undo is no longer possible")
}

func TestUndoRefusesWhenContactsWereLinkedSince(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	res := e.clickRemove(e.openTab(2, lead, "en"))
	other := e.portal.LeadContacts(e.leadWithContacts(1))[0].ContactID
	require.NoError(t, e.portal.LinkContact(lead, other, 10, true))

	refused := e.submit(res, "#undo-form")
	assert.Equal(t, http.StatusConflict, refused.status)
	assert.Contains(t, text(refused, ".alert-warning"), "Other contacts were linked to this lead after yours were unlinked.")
	links := e.portal.LeadContacts(lead)
	require.Len(t, links, 1, "the new link is kept, nothing restored")
	assert.Equal(t, other, links[0].ContactID)
	assert.Equal(t, 1, refused.doc.Find("#contacts li").Length(), "the page shows the lead as it is")
	assert.Empty(t, e.portal.CallsTo("crm.lead.contact.items.set"))
	h := e.history()
	require.NotEmpty(t, h)
	assert.Equal(t, store.OutcomeRefused, h[0].Outcome)
	assert.Equal(t, "LEAD_CHANGED", h[0].ErrorCode)
}

func TestUndoExpiresAfterTenMinutes(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	res := e.clickRemove(e.openTab(2, lead, "en"))
	e.clock.Advance(store.UndoTTL + time.Second)
	late := e.submit(res, "#undo-form")
	assert.Contains(t, text(late, ".alert-warning"), "Undo is no longer possible")
	assert.Empty(t, e.portal.LeadContacts(lead))
}

func TestUndoThatFailsUpstreamCanBeRetried(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	res := e.clickRemove(e.openTab(2, lead, "en"))
	e.portal.InjectFault(simulator.Fault{Method: "crm.lead.contact.items.set", Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"})
	failed := e.submit(res, "#undo-form")
	assert.Equal(t, http.StatusServiceUnavailable, failed.status)
	assert.Contains(t, text(failed, ".alert-danger"), "The contacts were not restored")
	require.Equal(t, 1, failed.doc.Find("#undo-form").Length(), "nothing was written: Undo is offered again")
	ok := e.submit(failed, "#undo-form")
	require.Equal(t, http.StatusOK, ok.status, ok.body)
	assert.Len(t, e.portal.LeadContacts(lead), 3)
	outcomes := []string{}
	for _, h := range e.history() {
		outcomes = append(outcomes, h.Action+":"+h.Outcome+":"+h.ErrorCode)
	}
	assert.Equal(t, []string{"undo:ok:", "undo:error:QUERY_LIMIT_EXCEEDED", "remove:ok:"}, outcomes)
}

func TestFailedRemovalIsRecordedWithoutUndo(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	res := e.clickRemove(e.openTab(simulator.SeedViewer, lead, "en"))
	assert.Equal(t, http.StatusForbidden, res.status)
	assert.Zero(t, res.doc.Find("#undo-form").Length())
	h := e.history()
	require.Len(t, h, 1)
	assert.Equal(t, store.OutcomeError, h[0].Outcome)
	assert.Equal(t, "ACCESS_DENIED", h[0].ErrorCode)
	assert.EqualValues(t, simulator.SeedViewer, h[0].UserID)
}

func (e *testEnv) openApp(userID int, lang string) page {
	e.t.Helper()
	f, err := e.portal.OpenApp(userID, lang)
	require.NoError(e.t, err)
	return e.postFrame(f)
}

func TestAppPageIsForAdministrators(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	e.clickRemove(e.openTab(2, lead, "en"))

	admin := e.openApp(simulator.SeedAdmin, "en")
	require.Equal(t, http.StatusOK, admin.status, admin.body)
	assert.Contains(t, text(admin, "#install-status"), "Installed")
	assert.Contains(t, text(admin, "#placements"), "CRM_LEAD_DETAIL_TAB")
	assert.Contains(t, text(admin, "#placements .badge"), "bound")
	rows := admin.doc.Find("#history > li")
	require.Equal(t, 1, rows.Length())
	assert.Equal(t, "/crm/lead/details/1/", rows.Find("a").AttrOr("data-path", ""))
	assert.Equal(t, e.portal.URL()+"/crm/lead/details/1/", rows.Find("a").AttrOr("href", ""))
	assert.Equal(t, []string{"Jürgen Groß", "Анна Сергеевна Смирнова", "Siobhán O'Connor"},
		admin.doc.Find("#history .names li").Map(func(_ int, s *goquery.Selection) string { return s.Text() }), "the contacts by name")
	assert.Contains(t, strings.Split(admin.header.Get("Content-Security-Policy"), "; "), "frame-ancestors "+e.portal.URL())

	// One batch: verification, ADMIN and the placements together.
	for _, user := range []int{simulator.SeedSales, simulator.SeedViewer} {
		mark := len(e.portal.Calls())
		p := e.openApp(user, "ru")
		require.Equal(t, http.StatusOK, p.status)
		assert.Equal(t, "Эта страница для администраторов", text(p, "#not-admin h2"))
		assert.Zero(t, p.doc.Find("#history, #rebind-form, input[name=ctx]").Length(), "nothing for non-admins")
		n, _ := batchRequests(e.portal, mark)
		assert.Equal(t, 1, n)
	}

	// A frame that does not come from the portal gets nothing.
	f, err := e.portal.OpenApp(simulator.SeedAdmin, "en")
	require.NoError(t, err)
	f.Form.Set("APPLICATION_TOKEN", "forged")
	assert.Equal(t, http.StatusForbidden, e.postFrame(f).status)
}

func TestRebindFromTheAppPage(t *testing.T) {
	e := newInstalledEnv(t)
	admin := e.openApp(simulator.SeedAdmin, "en")
	done := e.submit(admin, "#rebind-form")
	require.Equal(t, http.StatusOK, done.status, done.body)
	assert.Contains(t, text(done, ".alert-success"), "The tab, the lead list's menu item, the event handlers and, where the portal offers it, the automation rule are bound.")
	assert.Len(t, e.portal.Placements(), 2)

	// The admin context is not a lead tab's, nor the other way round.
	tab := e.openTab(2, e.leadWithContacts(3), "en")
	ctx, _ := tab.doc.Find(`#remove-form input[name=ctx]`).Attr("value")
	p := e.postForm(e.base+"/app/rebind", url.Values{"ctx": {ctx}}, "Sec-Fetch-Site", "same-origin", "Origin", e.base)
	assert.Equal(t, http.StatusForbidden, p.status)
	actx, _ := admin.doc.Find(`#rebind-form input[name=ctx]`).Attr("value")
	p = e.postForm(e.base+"/placements/lead-tab/undo", url.Values{"ctx": {actx}}, "Sec-Fetch-Site", "same-origin", "Origin", e.base)
	assert.Equal(t, http.StatusForbidden, p.status)
}

func TestCleanUninstallWipesTheHistory(t *testing.T) {
	e := newInstalledEnv(t)
	e.clickRemove(e.openTab(2, e.leadWithContacts(3), "en"))
	require.Len(t, e.history(), 1)
	require.NoError(t, e.portal.Uninstall(context.Background(), false))
	assert.Len(t, e.history(), 1, "kept without CLEAN")
	e.install()
	require.NoError(t, e.portal.Uninstall(context.Background(), true))
	assert.Empty(t, e.history(), "wiped with CLEAN")
}

// TestPagesAfterAClickSpeakTheUsersLanguage: every page a click leads to
// is in the user's language, also an error page rendered when the page
// context or its session can no longer be read (a Russian user whose
// session expired used to get English).
func TestPagesAfterAClickSpeakTheUsersLanguage(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	tab := e.openTab(simulator.SeedSales, lead, "ru")
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	assert.Equal(t, "ru", tab.doc.Find("html").AttrOr("lang", ""))
	for _, sel := range []string{"#remove-form"} {
		action, _ := tab.doc.Find(sel).Attr("action")
		assert.Contains(t, action, "LANG=ru", sel)
	}
	confirm := e.submit(tab, "#remove-form")
	require.Equal(t, http.StatusOK, confirm.status, confirm.body)
	assert.Equal(t, "ru", confirm.doc.Find("html").AttrOr("lang", ""))

	// The session is gone (expired, swept): the error page is Russian.
	_, err := e.rawDB().Exec("DELETE FROM sessions")
	require.NoError(t, err)
	res := e.clickRemove(tab)
	assert.Equal(t, http.StatusUnauthorized, res.status)
	assert.Equal(t, "ru", res.doc.Find("html").AttrOr("lang", ""))
	assert.Contains(t, res.body, "Закройте", "the Russian explanation: %s", text(res, "main"))

	// A context that cannot be read at all: still Russian.
	action := tab.doc.Find("#remove-form").AttrOr("data-action", "")
	res = e.postForm(e.base+action, url.Values{"ctx": {"garbled"}}, "Sec-Fetch-Site", "same-origin", "Origin", e.base)
	assert.Equal(t, http.StatusForbidden, res.status)
	assert.Equal(t, "ru", res.doc.Find("html").AttrOr("lang", ""))
}

// TestPagesAfterAClickNameTheContacts: every page that lists the lead's
// contacts after a click (the no-JS confirmation, the tab again after
// Cancel, and the tab when Undo came too late and someone linked contacts
// meanwhile) shows their names, looked up in the same batch, not bare ids.
func TestPagesAfterAClickNameTheContacts(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	names := func(p page) []string {
		var out []string
		p.doc.Find("#contacts li a.contact-link").Each(func(_ int, s *goquery.Selection) {
			out = append(out, strings.Join(strings.Fields(s.Text()), " "))
		})
		return out
	}
	var want []string
	for _, l := range e.portal.LeadContacts(lead) {
		c, ok := e.portal.Contact(l.ContactID)
		require.True(t, ok)
		want = append(want, strings.Join(strings.Fields(c.Name+" "+c.SecondName+" "+c.LastName), " "))
	}
	tab := e.openTab(2, lead, "en")
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	confirm := e.submit(tab, "#remove-form")
	require.Equal(t, http.StatusOK, confirm.status, confirm.body)
	got := names(confirm)
	require.Len(t, got, 3, "the confirmation lists what will be unlinked")
	for i := range want {
		assert.Contains(t, got[i], want[i], "the confirmation names contact %d", i)
	}
	back := e.submit(confirm, "#cancel-form")
	require.Equal(t, http.StatusOK, back.status, back.body)
	got = names(back)
	require.Len(t, got, 3)
	for i := range want {
		assert.Contains(t, got[i], want[i], "the view after Cancel names contact %d", i)
	}

	res := e.submit(back, "#remove-form")
	res = e.submit(res, "#confirm-form")
	require.Equal(t, http.StatusOK, res.status, res.body)
	require.NoError(t, e.portal.LinkContact(lead, 4, 10, true))
	four, _ := e.portal.Contact(4)
	e.clock.Advance(store.UndoTTL + time.Second)
	late := e.submit(res, "#undo-form")
	assert.Contains(t, text(late, ".alert-warning"), "Undo is no longer possible")
	got = names(late)
	require.Len(t, got, 1)
	assert.Contains(t, got[0], four.LastName, "the expired-undo page names what is linked now")
	assert.NotContains(t, late.body, "Contact #4")
}
