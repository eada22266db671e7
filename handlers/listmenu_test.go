package handlers_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
)

// listMenuPath is the list menu's handler path in app.json.
const listMenuPath = "/placements/lead-list-menu"

// openListMenu opens the lead page as the lead list's row menu does: the
// frame Bitrix24 posts into the slider.
func (e *testEnv) openListMenu(userID, leadID int, lang string) page {
	e.t.Helper()
	f, err := e.portal.OpenLeadListMenu(userID, leadID, lang)
	require.NoError(e.t, err)
	return e.postFrame(f)
}

// TestListMenuShowsLeadAndContactsInOneRoundTrip: the row menu's slider
// gets the tab's page (header, contacts, the danger button), verified
// and read in one batch, and its forms post to the list menu's routes.
func TestListMenuShowsLeadAndContactsInOneRoundTrip(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	mark := len(e.portal.Calls())
	p := e.openListMenu(simulator.SeedSales, lead, "en")
	require.Equal(t, http.StatusOK, p.status, p.body)

	n, methods := batchRequests(e.portal, mark)
	assert.Equal(t, []string{"batch"}, methods, "opening the slider costs one request to the portal")
	assert.Equal(t, 1, n)

	l, _ := e.portal.Lead(lead)
	assert.Contains(t, p.doc.Find("h1").Text(), l.Title)
	assert.Equal(t, "3 linked contacts", strings.TrimSpace(p.doc.Find("#count").Text()))
	assert.Equal(t, 3, p.doc.Find("#contacts li").Length())
	assert.False(t, p.doc.Find("#remove").Is("[disabled]"))
	assert.Equal(t, "Remove all contacts", strings.TrimSpace(p.doc.Find("#remove").Text()))
	form := p.doc.Find("#remove-form")
	assert.True(t, strings.HasPrefix(form.AttrOr("data-action", ""), listMenuPath+"/remove?"), form.AttrOr("data-action", ""))
	assert.True(t, strings.HasPrefix(form.AttrOr("action", ""), listMenuPath+"/confirm?"), form.AttrOr("action", ""))
	assert.Equal(t, "list", e.readContext(p.doc.Find("input[name=ctx]").AttrOr("value", ""))["v"], "the context is signed for the list menu")
	assert.Contains(t, strings.Split(p.header.Get("Content-Security-Policy"), "; "), "frame-ancestors "+e.portal.URL())
	assert.Equal(t, "no-store", p.header.Get("Cache-Control"))

	// The tab's own page stays on the tab's routes.
	tab := e.openTab(simulator.SeedSales, lead, "en")
	assert.True(t, strings.HasPrefix(tab.doc.Find("#remove-form").AttrOr("data-action", ""), "/placements/lead-tab/remove?"))
	assert.Equal(t, "tab", e.readContext(tab.doc.Find("input[name=ctx]").AttrOr("value", ""))["v"])
}

// TestListMenuRemovalAndUndo: removal from the slider unlinks the lead's
// contacts with the clicking user's token, every later page (confirm,
// view, undo) works on the list menu's routes, and the history records
// each entry as coming from the lead list; the admins read it so.
func TestListMenuRemovalAndUndo(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	before := e.portal.LeadContacts(lead)
	slider := e.openListMenu(simulator.SeedSales, lead, "en")
	require.Equal(t, http.StatusOK, slider.status, slider.body)

	// Without JavaScript: the confirmation page, then Cancel (view).
	confirm := e.submit(slider, "#remove-form")
	require.Equal(t, http.StatusOK, confirm.status, confirm.body)
	assert.Len(t, e.portal.LeadContacts(lead), 3, "the confirmation changes nothing")
	for _, a := range confirm.doc.Find("form").Map(func(_ int, f *goquery.Selection) string { return f.AttrOr("action", "") }) {
		assert.True(t, strings.HasPrefix(a, listMenuPath+"/"), "the confirmation's forms stay on the list menu's routes: %s", a)
	}

	done := e.clickRemove(slider)
	require.Equal(t, http.StatusOK, done.status, done.body)
	assert.Empty(t, e.portal.LeadContacts(lead))
	deletes := e.portal.CallsTo("crm.lead.contact.items.delete")
	require.Len(t, deletes, 1)
	assert.Equal(t, simulator.SeedSales, deletes[0].UserID, "the delete runs as the user who clicked")
	assert.Equal(t, []string{strconv.Itoa(lead)}, deletes[0].Params["id"])
	assert.Contains(t, text(done, ".alert-success"), "3 contacts unlinked from lead")
	assert.True(t, strings.HasPrefix(done.doc.Find("#undo-form").AttrOr("action", ""), listMenuPath+"/undo?"))

	undone := e.submit(done, "#undo-form")
	require.Equal(t, http.StatusOK, undone.status, undone.body)
	assert.Equal(t, before, e.portal.LeadContacts(lead), "the same links, SORT and primary contact")

	hist := e.history()
	require.Len(t, hist, 2)
	assert.Equal(t, store.ActionUndo, hist[0].Action)
	assert.Equal(t, store.ActionRemove, hist[1].Action)
	assert.Equal(t, store.OutcomeOK, hist[1].Outcome)
	assert.Len(t, hist[1].ContactIDs, 3)
	for _, h := range hist {
		assert.Equal(t, store.ViaList, h.Via, "%s came from the lead list", h.Action)
	}

	// A removal from the tab says nothing of where it came from; the list
	// menu's entries say "from the lead list".
	tabDone := e.clickRemove(e.openTab(simulator.SeedSales, lead, "en"))
	require.Equal(t, http.StatusOK, tabDone.status, tabDone.body)
	assert.Equal(t, store.ViaTab, e.history()[0].Via)
	admin := e.openApp(simulator.SeedAdmin, "en")
	require.Equal(t, http.StatusOK, admin.status, admin.body)
	rows := admin.doc.Find("#history > li")
	require.Equal(t, 3, rows.Length())
	assert.Zero(t, rows.Eq(0).Find(".history-via").Length(), "the tab goes unsaid")
	assert.Equal(t, "from the lead list", text(page{doc: goquery.NewDocumentFromNode(rows.Get(1))}, ".history-via"))
	assert.Equal(t, "from the lead list", text(page{doc: goquery.NewDocumentFromNode(rows.Get(2))}, ".history-via"))
}

// TestListMenuViewerIsRefused: a user who may read but not edit leads
// opens the slider and is refused by Bitrix24 on the click; nothing is
// removed, and the refusal is in the history as coming from the list.
func TestListMenuViewerIsRefused(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	slider := e.openListMenu(simulator.SeedViewer, lead, "en")
	require.Equal(t, http.StatusOK, slider.status, slider.body)
	res := e.clickRemove(slider)
	assert.Equal(t, http.StatusForbidden, res.status)
	assert.Contains(t, text(res, ".alert-danger"), "do not have permission")
	assert.Contains(t, text(res, ".alert-danger .alert-code"), "ACCESS_DENIED")
	assert.Len(t, e.portal.LeadContacts(lead), 3, "nothing was removed")
	assert.Zero(t, res.doc.Find("#undo").Length())
	assert.True(t, strings.HasPrefix(res.doc.Find("#back-form").AttrOr("action", ""), listMenuPath+"/view?"),
		"Back to the list stays in the slider's routes")

	hist := e.history()
	require.Len(t, hist, 1)
	assert.Equal(t, store.OutcomeError, hist[0].Outcome)
	assert.Equal(t, "ACCESS_DENIED", hist[0].ErrorCode)
	assert.Equal(t, simulator.SeedViewer, int(hist[0].UserID))
	assert.Equal(t, store.ViaList, hist[0].Via)
}

// TestListMenuRefusesWhatIsNotItsOwn: the list menu's route takes only a
// verified CRM_LEAD_LIST_MENU frame, the tab's only a CRM_LEAD_DETAIL_TAB
// one, and nothing is asked of the portal before that; the refusal says
// where the page works.
func TestListMenuRefusesWhatIsNotItsOwn(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	cases := []struct {
		name   string
		open   func() (simulator.Frame, error)
		mutate func(f *simulator.Frame)
		status int
		text   string
	}{
		{"the tab's placement at the list menu", func() (simulator.Frame, error) { return e.portal.OpenLeadListMenu(2, lead, "en") },
			func(f *simulator.Frame) { f.Form.Set("PLACEMENT", "CRM_LEAD_DETAIL_TAB") }, 400, "row menu of the CRM lead list"},
		{"another list's menu", func() (simulator.Frame, error) { return e.portal.OpenLeadListMenu(2, lead, "en") },
			func(f *simulator.Frame) { f.Form.Set("PLACEMENT", "CRM_DEAL_LIST_MENU") }, 400, "row menu of the CRM lead list"},
		{"a tab frame posted to the list menu", func() (simulator.Frame, error) { return e.portal.OpenLeadTab(2, lead, "en") },
			func(f *simulator.Frame) { f.URL = strings.Replace(f.URL, "/placements/lead-tab", listMenuPath, 1) }, 400, "row menu of the CRM lead list"},
		{"a list menu frame posted to the tab", func() (simulator.Frame, error) { return e.portal.OpenLeadListMenu(2, lead, "en") },
			func(f *simulator.Frame) { f.URL = strings.Replace(f.URL, listMenuPath, "/placements/lead-tab", 1) }, 400, "only as a tab"},
		{"another portal's application token", func() (simulator.Frame, error) { return e.portal.OpenLeadListMenu(2, lead, "en") },
			func(f *simulator.Frame) { f.Form.Set("APPLICATION_TOKEN", "c7d7b0000000000000000000deadbeef") }, 403, "did not come from your Bitrix24"},
		{"unknown member_id", func() (simulator.Frame, error) { return e.portal.OpenLeadListMenu(2, lead, "en") },
			func(f *simulator.Frame) { f.Form.Set("member_id", "0000unknown") }, 403, "not installed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.open()
			require.NoError(t, err)
			require.Contains(t, f.URL, "/placements/")
			tc.mutate(&f)
			mark := len(e.portal.Calls())
			p := e.postFrame(f)
			assert.Equal(t, tc.status, p.status, p.body)
			assert.Contains(t, text(p, ".alert"), tc.text)
			assert.Zero(t, p.doc.Find("input[name=ctx]").Length())
			assert.Contains(t, p.header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
			n, _ := batchRequests(e.portal, mark)
			assert.Zero(t, n, "no call to the portal before the frame is accepted")
		})
	}
	assert.Len(t, e.portal.LeadContacts(lead), 3)
}

// TestPageContextStaysOnItsSurface: a page of the list menu posted to the
// tab's routes, or the other way round, is refused, even with a context
// the app signed itself (the history would record the wrong origin).
func TestPageContextStaysOnItsSurface(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	slider := e.openListMenu(simulator.SeedSales, lead, "en")
	tab := e.openTab(simulator.SeedSales, lead, "en")
	require.Equal(t, http.StatusOK, slider.status, slider.body)
	require.Equal(t, http.StatusOK, tab.status, tab.body)

	post := func(path string, p page, ctx string) page {
		form := e.fields(p.doc.Find("#remove-form"))
		if ctx != "" {
			form.Set("ctx", ctx)
		}
		return e.postForm(e.base+path+"?LANG=en", form, "Sec-Fetch-Site", "same-origin", "Origin", e.base)
	}
	for name, res := range map[string]page{
		"list page to the tab's removal": post("/placements/lead-tab/remove", slider, ""),
		"list page to the tab's undo":    post("/placements/lead-tab/undo", slider, ""),
		"tab page to the list's removal": post(listMenuPath+"/remove", tab, ""),
		"tab page to the list's view":    post(listMenuPath+"/view", tab, ""),
	} {
		assert.Equal(t, http.StatusForbidden, res.status, name)
		assert.Zero(t, res.doc.Find("input[name=ctx]").Length(), name)
	}

	// Contexts the app signed with another via: an unknown one is
	// refused everywhere; one without via (signed before it existed) is
	// the tab's.
	pc := e.readContext(slider.doc.Find("input[name=ctx]").AttrOr("value", ""))
	pc["v"] = "automation"
	res := post(listMenuPath+"/remove", slider, e.mintContext(pageContextName, pc))
	assert.Equal(t, http.StatusForbidden, res.status)
	delete(pc, "v")
	res = post(listMenuPath+"/remove", slider, e.mintContext(pageContextName, pc))
	assert.Equal(t, http.StatusForbidden, res.status, "a context without via is the tab's, not the list's")
	assert.Len(t, e.portal.LeadContacts(lead), 3, "nothing was removed")
	assert.Empty(t, e.history())

	res = post("/placements/lead-tab/remove", slider, e.mintContext(pageContextName, pc))
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Empty(t, e.portal.LeadContacts(lead))
	require.Len(t, e.history(), 1)
	assert.Equal(t, store.ViaTab, e.history()[0].Via)
}

// TestHistorySaysWhereEntriesCameFrom: entries from automation rules and
// bulk runs (written by those features) read as such on the admins' page,
// in the admin's language.
func TestHistorySaysWhereEntriesCameFrom(t *testing.T) {
	e := newInstalledEnv(t)
	addOldEntries(t, e,
		store.HistoryEntry{LeadID: 1, UserID: 2, UserName: "Bob Sales", Action: store.ActionRemove, Outcome: store.OutcomeOK, Via: store.ViaTab},
		store.HistoryEntry{LeadID: 1, UserID: 2, UserName: "Bob Sales", Action: store.ActionRemove, Outcome: store.OutcomeOK, Via: store.ViaList},
		store.HistoryEntry{LeadID: 1, UserID: 2, UserName: "Bob Sales", Action: store.ActionRemove, Outcome: store.OutcomeOK, Via: store.ViaAutomation},
		store.HistoryEntry{LeadID: 1, UserID: 1, UserName: "Alice Admin", Action: store.ActionRemove, Outcome: store.OutcomeOK, Via: store.ViaBulk, RunID: 7},
	)
	for lang, want := range map[string][]string{
		"en": {"in a bulk run", "by automation", "from the lead list", ""},
		"ru": {"при массовой обработке", "роботом", "из списка лидов", ""},
	} {
		admin := e.openApp(simulator.SeedAdmin, lang)
		require.Equal(t, http.StatusOK, admin.status, admin.body)
		var got []string
		admin.doc.Find("#history > li").Each(func(_ int, li *goquery.Selection) {
			got = append(got, strings.TrimSpace(li.Find(".history-via").Text()))
		})
		assert.Equal(t, want, got, lang)
	}
}
