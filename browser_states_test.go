//go:build !race

// The browser tests run without the race detector: see browser_ui_test.go.

package main

// Browser tests of issue 13, points 1, 4 and 5, in English, Russian and
// Arabic: a failed removal or undo keeps the lead's header and list and
// offers the next steps; what happened is said with one verb ("unlink")
// and says the contacts stay in the CRM; an address opened outside
// Bitrix24 greets in the browser's language with the landing page and a
// favicon. Each state passes axe-core with zero violations.

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// stateTexts are the texts of one language the states below show.
type stateTexts struct {
	code, dir      string
	count          string // three linked contacts
	back, retry    string
	failed         string // the removal's failure title
	unlinked       string // the success banner's first words
	stays          string // the success banner says the CRM keeps them
	landing, step  string // the landing's title and its last step
	landingOutside string // the landing says where the app works
	acceptLanguage string
}

var stateLanguages = []stateTexts{
	{code: "en", dir: "ltr", count: "3 linked contacts", back: "Back to the list", retry: "Try again",
		failed: "The contacts were not unlinked", unlinked: "Contacts unlinked", stays: "The contacts themselves stay in the CRM.",
		landing: "Contacts cleanup for Bitrix24", step: "Open any lead in the CRM and choose the “Contacts cleanup” tab.",
		landingOutside: "works inside Bitrix24", acceptLanguage: "en-US,en;q=0.9"},
	{code: "ru", dir: "ltr", count: "3 связанных контакта", back: "Вернуться к списку", retry: "Повторить",
		failed: "Контакты не отвязаны", unlinked: "Контакты отвязаны", stays: "Из CRM ничего не удалено.",
		landing: "Очистка контактов для Bitrix24", step: "Откройте любой лид в CRM и выберите вкладку «Очистка контактов».",
		landingOutside: "работает внутри Bitrix24", acceptLanguage: "ru-RU,ru;q=0.9,en;q=0.8"},
	{code: "ar", dir: "rtl", count: "3 جهات اتصال مرتبطة", back: "العودة إلى القائمة", retry: "إعادة المحاولة",
		failed: "لم يتم فصل جهات الاتصال", unlinked: "تم فصل جهات الاتصال", stays: "تبقى جهات الاتصال نفسها في CRM.",
		landing: "تنظيف جهات الاتصال لـ Bitrix24", step: "افتح أي عميل محتمل في CRM واختر علامة التبويب «تنظيف جهات الاتصال».",
		landingOutside: "داخل Bitrix24", acceptLanguage: "ar-EG,ar;q=0.9"},
}

// contactNames reads the names the tab lists.
func contactNames(t *testing.T, frame context.Context) []string {
	t.Helper()
	return readStep(t, frame, "read the contact names", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#contacts .contact-link"), a => a.textContent.trim())`))
}

// TestBrowserUIFailureKeepsTheList: a read-only user's removal is refused
// (ACCESS_DENIED); the page keeps the header, the count and the list, the
// banner takes the focus, Tab reaches "Back to the list", and Enter there
// shows the tab again. In English, Russian and Arabic.
func TestBrowserUIFailureKeepsTheList(t *testing.T) {
	d, portal, b, axe := installedUI(t)
	for _, l := range stateLanguages {
		frame := openTab(t, b, d, simulator.SeedViewer, simulator.SeedLeadThreeContacts, l.code)
		title := readStep(t, frame, l.code+": read the header", chromedp.Text(chromedp.CSS("h1.title")))
		names := contactNames(t, frame)
		require.Len(t, names, 3)

		doStep(t, frame, l.code+": focus the frame", chromedp.Evaluate[chromedp.Void](`window.focus()`))
		tabTo(t, b, frame, "remove")
		pressKey(t, b, kb.Enter)
		doStep(t, frame, l.code+": wait for the confirmation", chromedp.WaitVisible(chromedp.CSS("#confirm")))
		pressKey(t, b, kb.Tab)
		require.Equal(t, "confirm-yes", activeID(t, frame))
		pressKey(t, b, kb.Enter)
		doStep(t, frame, l.code+": wait for the failure", chromedp.WaitVisible(chromedp.CSS("#failure")))
		waitFitted(t, b)

		attrs := readStep(t, frame, l.code+": read lang and dir", chromedp.Evaluate[[]string](
			`[document.documentElement.lang, document.documentElement.dir]`))
		assert.Equal(t, []string{l.code, l.dir}, attrs)
		assert.Equal(t, title, readStep(t, frame, l.code+": read the header", chromedp.Text(chromedp.CSS("h1.title"))), "the lead's header stays")
		assert.Equal(t, l.count, strings.TrimSpace(readStep(t, frame, l.code+": read the count", chromedp.Text(chromedp.CSS("#count")))))
		assert.Equal(t, names, contactNames(t, frame), "%s: the list stays", l.code)
		assert.Contains(t, readStep(t, frame, l.code+": read the banner", chromedp.Text(chromedp.CSS("#failure"))), l.failed)
		assert.Equal(t, []string{l.back}, textsOf(t, frame, l.code+": read the next steps", "#next-steps button"), "%s: no Try again for ACCESS_DENIED", l.code)
		assert.Empty(t, textsOf(t, frame, l.code+": look for the danger button", "#remove"))
		waitFocused(t, frame, "failure") // the failure banner has the focus
		assert.Len(t, portal.LeadContacts(simulator.SeedLeadThreeContacts), 3, "%s: nothing unlinked", l.code)
		requireNoHorizontalScroll(t, b, frame, l.code+" failure")
		requireAxeClean(t, frame, axe, l.code+" failure")

		// The way back, by keyboard.
		pressKey(t, b, kb.Tab)
		require.Equal(t, "back", activeID(t, frame), "%s: Tab reaches Back to the list", l.code)
		requireFocusVisible(t, frame)
		pressKey(t, b, kb.Enter)
		doStep(t, frame, l.code+": wait for the tab", chromedp.WaitVisible(chromedp.CSS(".card-footer #remove")))
		assert.Empty(t, textsOf(t, frame, l.code+": look for the failure", "#failure"))
		assert.Equal(t, names, contactNames(t, frame))
	}
	requireNoProblems(t, b, "the server responded with a status of 403 (Forbidden) ["+d.app+"/")
}

// TestBrowserUIRetryAndUnlinkedWording: an error that retrying can help
// (QUERY_LIMIT_EXCEEDED on the delete) offers "Try again" next to "Back to
// the list"; trying again confirms in the page and unlinks, and the
// success banner says "unlinked" and that the CRM keeps the contacts. An
// undo that fails the same way keeps the emptied list and offers Undo
// again as "Try again". In English, Russian and Arabic.
func TestBrowserUIRetryAndUnlinkedWording(t *testing.T) {
	d, portal, b, axe := installedUI(t)
	lead := simulator.SeedLeadThreeContacts
	for _, l := range stateLanguages {
		before := portal.LeadContacts(lead)
		require.Len(t, before, 3)
		frame := openTab(t, b, d, simulator.SeedSales, lead, l.code)
		names := contactNames(t, frame)
		portal.InjectFault(simulator.Fault{Method: "crm.lead.contact.items.delete", Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"})
		doStep(t, frame, l.code+": click Remove all contacts", chromedp.Click(chromedp.CSS("#remove")))
		doStep(t, frame, l.code+": confirm", chromedp.Click(chromedp.CSS("#confirm-yes")))
		doStep(t, frame, l.code+": wait for the failure", chromedp.WaitVisible(chromedp.CSS("#failure")))
		waitFitted(t, b)
		assert.Equal(t, []string{l.retry, l.back}, textsOf(t, frame, l.code+": read the next steps", "#next-steps button"))
		assert.Equal(t, names, contactNames(t, frame))
		assert.Equal(t, l.count, strings.TrimSpace(readStep(t, frame, l.code+": read the count", chromedp.Text(chromedp.CSS("#count")))))
		requireNoHorizontalScroll(t, b, frame, l.code+" retryable failure")
		requireAxeClean(t, frame, axe, l.code+" retryable failure")
		shot(t, b, frame, "retry-"+l.code+".png", "#tab-body")

		doStep(t, frame, l.code+": click Try again", chromedp.Click(chromedp.CSS("#remove")))
		doStep(t, frame, l.code+": wait for the confirmation", chromedp.WaitVisible(chromedp.CSS("#failure #confirm")))
		requireAxeClean(t, frame, axe, l.code+" confirmation after a failure")
		doStep(t, frame, l.code+": confirm", chromedp.Click(chromedp.CSS("#confirm-yes")))
		doStep(t, frame, l.code+": wait for the result", chromedp.WaitVisible(chromedp.CSS(".alert-success #undo")))
		waitFitted(t, b)
		success := readStep(t, frame, l.code+": read the banner", chromedp.Text(chromedp.CSS(".alert-success")))
		assert.Contains(t, success, l.unlinked, l.code)
		assert.Contains(t, success, l.stays, l.code)
		assert.Empty(t, portal.LeadContacts(lead))

		portal.InjectFault(simulator.Fault{Method: "crm.lead.contact.items.set", Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"})
		doStep(t, frame, l.code+": click Undo", chromedp.Click(chromedp.CSS("#undo")))
		doStep(t, frame, l.code+": wait for the failed undo", chromedp.WaitVisible(chromedp.CSS("#failure")))
		waitFitted(t, b)
		assert.Equal(t, []string{l.retry, l.back}, textsOf(t, frame, l.code+": read the next steps", "#next-steps button"))
		assert.Len(t, textsOf(t, frame, l.code+": read the empty list", "#empty"), 1, "the list as it is: emptied")
		waitFocused(t, frame, "failure")
		requireAxeClean(t, frame, axe, l.code+" failed undo")
		shot(t, b, frame, "undo-failed-"+l.code+".png", "#tab-body")
		doStep(t, frame, l.code+": undo again", chromedp.Click(chromedp.CSS("#undo")))
		doStep(t, frame, l.code+": wait for the list", chromedp.WaitVisible(chromedp.CSS(".alert-success")), chromedp.WaitVisible(chromedp.CSS("#contacts")))
		assert.Equal(t, before, portal.LeadContacts(lead), "%s: the same links again", l.code)
	}
	requireNoProblems(t, b, "the server responded with a status of 503 (Service Unavailable) ["+d.app+"/")
}

// TestBrowserLanding opens the app's addresses as a person would, outside
// Bitrix24: each shows what the app is and how to install it, in the
// browser's language (Accept-Language), right to left in Arabic, with the
// favicon and no console error (no /favicon.ico 404 either).
func TestBrowserLanding(t *testing.T) {
	d := startDemoApp(t)
	b := newBrowser(t, thirdPartyCookiesBlocked)
	axe := axeSource(t)
	for _, l := range stateLanguages {
		doStep(t, b.ctx, "a desktop window", chromedp.EmulateViewport(1280, 900))
		_, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Accept-Language": l.acceptLanguage}})
		require.NoError(t, err)
		for _, path := range []string{"/favicon.ico", "/placements/lead-tab", "/events/install", "/app"} {
			doStep(t, b.ctx, l.code+": open "+path, chromedp.Navigate(d.app+path))
			if path == "/favicon.ico" {
				continue // the icon itself: it must load, and log nothing
			}
			doStep(t, b.ctx, l.code+": wait for the page", chromedp.WaitVisible(chromedp.CSS("#install-steps")))
			attrs := readStep(t, b.ctx, l.code+": read lang and dir", chromedp.Evaluate[[]string](
				`[document.documentElement.lang, document.documentElement.dir]`))
			assert.Equal(t, []string{l.code, l.dir}, attrs, path)
			assert.Equal(t, l.landing, strings.TrimSpace(readStep(t, b.ctx, l.code+": read the title", chromedp.Text(chromedp.CSS("h1.title")))), path)
			steps := textsOf(t, b.ctx, l.code+": read the steps", "#install-steps li")
			require.Len(t, steps, 3, path)
			assert.Equal(t, l.step, steps[2], path)
			assert.Contains(t, readStep(t, b.ctx, l.code+": read the intro", chromedp.Text(chromedp.CSS(".head .count"))), l.landingOutside, path)
		}
		icon := readStep(t, b.ctx, l.code+": fetch the favicon", chromedp.Evaluate[string](
			`fetch(document.querySelector('link[rel="icon"]').href).then(r => r.status + " " + r.headers.get("content-type"))`,
			chromedp.EvalAwaitPromise))
		assert.Equal(t, "200 image/svg+xml", icon)
		requireNoHorizontalScroll(t, b, b.ctx, l.code+" landing at 1280 px")
		requireAxeClean(t, b.ctx, axe, l.code+" landing")
		pageShot(t, b, "landing-"+l.code+".png", "body")
		doStep(t, b.ctx, "narrow the window", chromedp.EmulateViewport(400, 800))
		requireNoHorizontalScroll(t, b, b.ctx, l.code+" landing at 400 px")
		requireAxeClean(t, b.ctx, axe, l.code+" landing at 400 px")
	}
	assert.NotEmpty(t, b.rec.requestsTo(d.app+"/static/favicon."), "the browser loaded the linked icon")
	requireNoProblems(t, b)
}
