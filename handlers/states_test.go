package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// Issue 13, point 1: a page that reports a failed action keeps the lead's
// header and the list the user clicked on, and offers the next steps.

// listOf is what a page shows of the lead: the header, the count and the
// contacts' names.
func listOf(p page) (title, count string, names []string) {
	p.doc.Find("#contacts .contact-link").Each(func(_ int, s *goquery.Selection) {
		names = append(names, strings.TrimSpace(s.Text()))
	})
	return text(p, "h1.title"), text(p, "#count"), names
}

// requireFailurePage checks the failure page's shape: the failure banner
// with "Back to the list" (posting to the view route), "Try again" only
// when retry, and no removal button under the list.
func requireFailurePage(t *testing.T, p page, retry bool) {
	t.Helper()
	require.Equal(t, 1, p.doc.Find("#failure.alert-danger[tabindex='-1']").Length(), "the failure banner: %s", p.body)
	back := p.doc.Find("#next-steps #back-form")
	require.Equal(t, 1, back.Length(), "Back to the list is always offered")
	assert.Equal(t, "/placements/lead-tab/view?LANG="+p.doc.Find("html").AttrOr("lang", ""), back.AttrOr("action", ""))
	assert.NotEmpty(t, back.Find("input[name=ctx]").AttrOr("value", ""))
	assert.Equal(t, retry, p.doc.Find("#next-steps #remove-form #remove").Length() == 1, "Try again offered")
	assert.Zero(t, p.doc.Find(".card #remove, #remove-why, .card-footer").Length(), "no removal button under the list")
	assert.Empty(t, p.doc.Find("body").AttrOr("data-reload", ""))
}

func TestFailedRemovalKeepsTheHeaderAndTheList(t *testing.T) {
	cases := []struct {
		name   string
		user   int
		fault  *simulator.Fault
		status int
		retry  bool
	}{
		{name: "ACCESS_DENIED", user: simulator.SeedViewer, status: http.StatusForbidden},
		{name: "NOT_FOUND", user: simulator.SeedSales, status: http.StatusNotFound,
			fault: &simulator.Fault{Method: "crm.lead.contact.items.delete", Status: 400, Code: "NOT_FOUND", Description: "Not found."}},
		{name: "QUERY_LIMIT_EXCEEDED", user: simulator.SeedSales, status: http.StatusServiceUnavailable, retry: true,
			fault: &simulator.Fault{Method: "batch", Times: 3, Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"}},
		{name: "unreachable", user: simulator.SeedSales, status: http.StatusBadGateway, retry: true,
			fault: &simulator.Fault{Method: "batch", Status: 502, RawBody: "<html><body>Bad Gateway</body></html>"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newInstalledEnv(t)
			lead := e.leadWithContacts(3)
			tab := e.openTab(tc.user, lead, "en")
			require.Equal(t, http.StatusOK, tab.status, tab.body)
			title, count, names := listOf(tab)
			require.Len(t, names, 3)
			if tc.fault != nil {
				e.portal.InjectFault(*tc.fault)
			}
			mark := len(e.portal.Calls())
			res := e.clickRemove(tab)
			require.Equal(t, tc.status, res.status, res.body)
			if !tc.retry {
				n, methods := batchRequests(e.portal, mark)
				assert.Equal(t, 1, n, "the failed click cost one portal request, the page none: %v", methods)
			}
			gotTitle, gotCount, gotNames := listOf(res)
			assert.Equal(t, title, gotTitle, "the lead's header")
			assert.Equal(t, "3 linked contacts", gotCount)
			assert.Equal(t, count, gotCount)
			assert.Equal(t, names, gotNames, "the list as the tab showed it")
			assert.Equal(t, 1, res.doc.Find("#contacts .badge-primary").Length(), "the primary contact is still marked")
			assert.Contains(t, text(res, "#failure"), "The contacts were not unlinked")
			requireFailurePage(t, res, tc.retry)
			assert.Len(t, e.portal.LeadContacts(lead), 3, "nothing was unlinked")

			// Back to the list reads the lead again: the normal tab.
			back := e.submit(res, "#back-form")
			require.Equal(t, http.StatusOK, back.status, back.body)
			_, _, backNames := listOf(back)
			assert.Equal(t, names, backNames)
			assert.Zero(t, back.doc.Find("#failure, #back-form").Length())
			assert.Equal(t, 1, back.doc.Find(".card-footer #remove:not([disabled])").Length())

			if tc.retry {
				// The fault is spent: Try again (confirmed in the page)
				// unlinks the contacts.
				done := e.clickRemove(res)
				require.Equal(t, http.StatusOK, done.status, done.body)
				assert.Contains(t, text(done, ".alert-success"), "3 contacts unlinked from lead")
				assert.Empty(t, e.portal.LeadContacts(lead))
			}
		})
	}
}

func TestFailedRemovalKeepsTheListInEveryLanguage(t *testing.T) {
	for _, tc := range []struct{ lang, dir, count, back, title string }{
		{"ru", "ltr", "3 связанных контакта", "Вернуться к списку", "Контакты не отвязаны"},
		{"ar", "rtl", "3 جهات اتصال مرتبطة", "العودة إلى القائمة", "لم يتم فصل جهات الاتصال"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			e := newInstalledEnv(t)
			lead := e.leadWithContacts(3)
			res := e.clickRemove(e.openTab(simulator.SeedViewer, lead, tc.lang))
			require.Equal(t, http.StatusForbidden, res.status, res.body)
			assert.Equal(t, tc.dir, res.doc.Find("html").AttrOr("dir", ""))
			assert.Equal(t, tc.count, text(res, "#count"))
			assert.Equal(t, 3, res.doc.Find("#contacts li").Length())
			assert.Equal(t, tc.back, text(res, "#back"))
			assert.Contains(t, text(res, "#failure .alert-title"), tc.title)
			requireFailurePage(t, res, false)
		})
	}
}

// Without JavaScript the removal goes through the confirmation page: its
// "Yes" carries the list too, and Cancel and Back need no JavaScript.
func TestFailedRemovalWithoutJavaScript(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	tab := e.openTab(simulator.SeedViewer, lead, "en")
	confirm := e.submit(tab, "#remove-form")
	require.Equal(t, http.StatusOK, confirm.status, confirm.body)
	require.Equal(t, 1, confirm.doc.Find("#confirm-form input[name=view]").Length(), "the confirmation carries the list")
	res := e.submit(confirm, "#confirm-form")
	require.Equal(t, http.StatusForbidden, res.status, res.body)
	assert.Equal(t, "3 linked contacts", text(res, "#count"))
	assert.Equal(t, 3, res.doc.Find("#contacts li").Length())
	requireFailurePage(t, res, false)
	back := e.submit(res, "#back-form")
	require.Equal(t, http.StatusOK, back.status, back.body)
	assert.Equal(t, 1, back.doc.Find(".card-footer #remove:not([disabled])").Length())
}

// The confirmation page and "Back to the list" read the lead; when that
// read fails, the page keeps the list it had.
func TestFailedReadKeepsTheList(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	_, _, names := listOf(tab)
	rateLimited := simulator.Fault{Method: "batch", Times: 3, Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"}

	e.portal.InjectFault(rateLimited)
	confirm := e.submit(tab, "#remove-form")
	require.Equal(t, http.StatusServiceUnavailable, confirm.status, confirm.body)
	assert.Contains(t, text(confirm, "#failure"), "The contacts could not be loaded")
	_, count, got := listOf(confirm)
	assert.Equal(t, "3 linked contacts", count)
	assert.Equal(t, names, got)
	requireFailurePage(t, confirm, true)
	assert.Equal(t, "/placements/lead-tab/confirm?LANG=en", confirm.doc.Find("#remove-form").AttrOr("action", ""),
		"without JavaScript, Try again asks again")

	e.portal.InjectFault(rateLimited)
	view := e.submit(confirm, "#back-form")
	require.Equal(t, http.StatusServiceUnavailable, view.status, view.body)
	_, _, got = listOf(view)
	assert.Equal(t, names, got)
	requireFailurePage(t, view, false)
	assert.Len(t, e.portal.LeadContacts(lead), 3)
}

// A failed undo keeps the page as it was after the removal (no contact
// linked) and offers Undo again as "Try again", and Back to the list.
func TestFailedUndoKeepsTheListAndOffersTryAgain(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	res := e.clickRemove(e.openTab(simulator.SeedSales, lead, "en"))
	require.Equal(t, http.StatusOK, res.status, res.body)
	e.portal.InjectFault(simulator.Fault{Method: "crm.lead.contact.items.set", Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"})
	failed := e.submit(res, "#undo-form")
	require.Equal(t, http.StatusServiceUnavailable, failed.status, failed.body)
	title, _, _ := listOf(res)
	gotTitle, count, _ := listOf(failed)
	assert.Equal(t, title, gotTitle)
	assert.Equal(t, "0 linked contacts", count)
	assert.Equal(t, 1, failed.doc.Find("#empty").Length())
	requireFailurePage(t, failed, false)
	assert.Equal(t, "Try again", text(failed, "#next-steps #undo"))
	assert.Zero(t, failed.doc.Find(".alert-hint").Length(), "no undo countdown on a failure")
	ok := e.submit(failed, "#undo-form")
	require.Equal(t, http.StatusOK, ok.status, ok.body)
	assert.Equal(t, 3, ok.doc.Find("#contacts li").Length())
	assert.Len(t, e.portal.LeadContacts(lead), 3)
}

// The list a form carries back is sealed and bound to its tab's session:
// one from another tab, or tampered with, is not shown (the page still
// offers the way back).
func TestCarriedListIsBoundToItsTab(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	other := e.leadWithContacts(1)
	tab := e.openTab(simulator.SeedViewer, lead, "en")
	foreign := e.openTab(simulator.SeedViewer, other, "en")
	form := tab.doc.Find("#remove-form")
	for name, view := range map[string]string{
		"another tab's list": foreign.doc.Find("#remove-form input[name=view]").AttrOr("value", ""),
		"a tampered list":    strings.ToUpper(form.Find("input[name=view]").AttrOr("value", "")),
		"no list":            "",
	} {
		v := e.fields(form)
		v.Set("view", view)
		res := e.postForm(e.base+form.AttrOr("data-action", ""), v, "Sec-Fetch-Site", "same-origin", "Origin", e.base)
		require.Equal(t, http.StatusForbidden, res.status, "%s: %s", name, res.body)
		assert.Zero(t, res.doc.Find("#contacts, #count").Length(), name)
		assert.Contains(t, text(res, "h1.title"), "Lead #", name)
		requireFailurePage(t, res, false)
	}
	require.NotEmpty(t, foreign.doc.Find("#remove-form input[name=view]").AttrOr("value", ""))
}
