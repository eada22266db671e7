//go:build !race

package main

// Browser tests of issue 13, points 2 and 3: the installer and the
// admins' page in English, Russian and Arabic: centred in the portal's
// frame in both directions, the history in words and names, times in the
// admin's zone, numbers and dates read left to right in Arabic, zero
// axe-core violations; and the screenshots of both pages.

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// margins is the app's column in its frame: the space from the frame's
// left and right edges to the page's box, and both widths.
type margins struct {
	Left, Right, Width, Frame float64
}

// requireCentred checks the page's column sits in the middle of the
// frame: the left and right margins differ by at most a pixel, in either
// direction of the language.
func requireCentred(t *testing.T, frame context.Context, what string) {
	t.Helper()
	m := readStep(t, frame, what+": measure the column", chromedp.Evaluate[margins](
		`(() => { const r = document.querySelector("main.page").getBoundingClientRect();
			const w = document.documentElement.clientWidth;
			return {left: r.left, right: w - r.right, width: r.width, frame: w} })()`))
	t.Logf("%s: frame %.0f px, column %.0f px, margins %.1f / %.1f px", what, m.Frame, m.Width, m.Left, m.Right)
	require.Less(t, m.Width, m.Frame, "%s: the frame is wider than the column, or nothing would show", what)
	assert.LessOrEqual(t, math.Abs(m.Left-m.Right), 1.0, "%s: margins %.1f px and %.1f px", what, m.Left, m.Right)
}

// holdInstallFinish makes the portal page's call that finishes an install
// fail, so the installer's last page stays in the slider to be looked
// at; release lifts it.
func holdInstallFinish(t *testing.T, b *browser) (release func()) {
	t.Helper()
	block := func(patterns ...string) {
		var bp []*network.BlockPattern
		for _, p := range patterns {
			bp = append(bp, &network.BlockPattern{URLPattern: p, Block: true})
		}
		_, err := chromedp.Call(b.ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: bp})
		require.NoError(t, err, "block the portal's install-finish call")
	}
	block("*://*:*/sim/api/install-finish")
	return func() { block() }
}

// TestBrowserUIInstallerAndAdminPages: the installer's last page and the
// admins' page as administrators see them in English, Russian and Arabic.
func TestBrowserUIInstallerAndAdminPages(t *testing.T) {
	d, portal := startDemoPortal(t)
	b := newBrowser(t, thirdPartyCookiesBlocked)
	axe := axeSource(t)

	// The installer, held on its last page.
	release := holdInstallFinish(t, b)
	for _, code := range []string{"en", "ar"} {
		doStep(t, b.ctx, code+": open the installer",
			chromedp.Navigate(fmt.Sprintf("%s/marketplace/install/?user=%d&lang=%s", d.portal, simulator.SeedAdmin, code)),
			chromedp.WaitVisible(chromedp.CSS("#app-frame")))
		frame := b.appFrame(t, d)
		doStep(t, frame, code+": wait for the installer's result", chromedp.WaitVisible(chromedp.CSS(".alert-success")))
		waitFitted(t, b)
		dir := readStep(t, frame, code+": read dir", chromedp.Evaluate[string](`document.documentElement.dir`))
		assert.Equal(t, map[string]string{"en": "ltr", "ar": "rtl"}[code], dir)
		requireCentred(t, frame, code+" installer")
		requireNoHorizontalScroll(t, b, frame, code+" installer")
		requireAxeClean(t, frame, axe, code+" installer")
		shot(t, b, frame, "install-"+code+".png", "#app-frame")
	}
	release()
	portal.FinishInstall()

	// History to read: Bob removes the contacts of a lead, one of them
	// linked by someone else after his tab opened (its name was never
	// read: it is listed by number); Carol, who may only read, is refused.
	frame := openTab(t, b, d, simulator.SeedSales, simulator.SeedLeadThreeContacts, "en")
	portal.AddContact(simulator.Contact{ID: 40, Name: "Late", LastName: "Arrival"})
	require.NoError(t, portal.LinkContact(simulator.SeedLeadThreeContacts, 40, 90, false))
	doStep(t, frame, "remove as Bob", chromedp.Click(chromedp.CSS("#remove")), chromedp.Click(chromedp.CSS("#confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS(".alert-success")))
	frame = openTab(t, b, d, simulator.SeedViewer, simulator.SeedLeadOneContact, "en")
	doStep(t, frame, "remove as Carol", chromedp.Click(chromedp.CSS("#remove")), chromedp.Click(chromedp.CSS("#confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS(".alert-danger")))

	type want struct {
		code, dir, unlinked, refused, zone string
	}
	for _, w := range []want{
		{"en", "ltr", "Unlinked 4 contacts", "Nothing was unlinked: the user has no permission in Bitrix24", "Times are in your Bitrix24 time zone: Europe/Berlin"},
		{"ru", "ltr", "Отвязаны 4 контакта", "Ничего не отвязано: у пользователя нет прав в Bitrix24", "Время указано в вашем часовом поясе Bitrix24: Europe/Berlin"},
		{"ar", "rtl", "فُصلت 4 جهات اتصال", "لم يُفصل شيء: ليس لدى المستخدم صلاحية في Bitrix24", "الأوقات معروضة حسب منطقتك الزمنية في Bitrix24: Europe/Berlin"},
	} {
		admin := openAdminPage(t, b, d, w.code, "#history")
		assert.Equal(t, w.dir, readStep(t, admin, w.code+": read dir", chromedp.Evaluate[string](`document.documentElement.dir`)))
		what := textsOf(t, admin, w.code+": read the outcomes", "#history > li .history-what")
		assert.Equal(t, []string{w.refused, w.unlinked}, what, w.code)
		assert.Equal(t, []string{"Carol Viewer", "Bob Sales"}, textsOf(t, admin, w.code+": read the users", "#history > li .history-user"))
		assert.Equal(t, []string{"Trade fair lead", "Website inquiry – Groß GmbH"}, textsOf(t, admin, w.code+": read the leads", "#history > li .history-lead"))
		assert.Equal(t, []string{"Jürgen Groß", "Анна Сергеевна Смирнова", "Siobhán O'Connor", "#40"},
			textsOf(t, admin, w.code+": read the contacts", "#history .names li"))
		assert.Equal(t, w.zone, strings.Join(strings.Fields(readStep(t, admin, w.code+": read the zone", chromedp.Text(chromedp.CSS("#history-zone")))), " "))
		requireCentred(t, admin, w.code+" admins' page")
		requireNoHorizontalScroll(t, b, admin, w.code+" admins' page")
		if w.dir == "rtl" {
			requireLeftToRightRuns(t, admin)
		}
		requireAxeClean(t, admin, axe, w.code+" admins' page")
		shot(t, b, admin, "admin-"+w.code+".png", "#tab-body")
	}
	// The held install-finish call fails on purpose, and so does Carol's
	// removal (403).
	requireNoProblems(t, b, "install-finish", "Failed to fetch",
		"the server responded with a status of 403 (Forbidden) ["+d.app+"/")
}

// requireLeftToRightRuns checks, on a right-to-left page, that what must
// read left to right is rendered so: each date's day comes left of its
// time, each "#id" has its "#" left of the digits, the install time comes
// left of its zone; and that every such run is laid out left to right.
// Measured on the rendered text (Range rectangles), so a missing dir
// attribute, or a stylesheet that overrides it, fails here.
func requireLeftToRightRuns(t *testing.T, frame context.Context) {
	t.Helper()
	type run struct {
		Text      string
		Direction string
		InOrder   bool
	}
	runs := readStep(t, frame, "measure the left-to-right runs", chromedp.Evaluate[[]run](`(() => {
		// in order: the part before the cut is drawn left of the part after.
		const inOrder = (node, cut) => {
			const a = document.createRange(), z = document.createRange();
			a.setStart(node, 0); a.setEnd(node, cut);
			z.setStart(node, cut); z.setEnd(node, node.textContent.length);
			return a.getBoundingClientRect().left < z.getBoundingClientRect().left;
		};
		const out = [];
		for (const t of document.querySelectorAll("#history time, #installed-at time")) {
			const node = t.firstChild;
			out.push({text: t.textContent, direction: getComputedStyle(t).direction, inOrder: inOrder(node, node.textContent.indexOf(" "))});
		}
		for (const b of document.querySelectorAll('#history .names bdi[dir="ltr"]')) {
			out.push({text: b.textContent, direction: getComputedStyle(b).direction, inOrder: inOrder(b.firstChild, 1)});
		}
		const at = document.querySelector("#installed-at");
		out.push({text: at.textContent.trim(), direction: getComputedStyle(at.querySelector("bdi")).direction,
			inOrder: at.querySelector("time").getBoundingClientRect().left < at.querySelector(".muted").getBoundingClientRect().left});
		return out;
	})()`))
	require.GreaterOrEqual(t, len(runs), 4, "two history times, the install time, an id and the install line: %v", runs)
	for _, r := range runs {
		assert.Equal(t, "ltr", r.Direction, "%q is laid out left to right", r.Text)
		assert.True(t, r.InOrder, "%q reads left to right on the right-to-left page", r.Text)
	}
}
