//go:build !race

// The browser tests run without the race detector: see browser_helpers_test.go.

package main

// Browser test of issue 14's list menu: "Remove all contacts" from a row of
// the lead list, in the slider the menu opens, through the same
// confirm, result and undo as the lead card's tab.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// openListMenu opens the lead list as user in lang, opens the row menu of
// lead and picks the app's item, then waits for the app's page in the
// slider. It returns the frame's context and the item's title.
func openListMenu(t *testing.T, b *browser, d *runningDemo, user, lead int, lang string) (context.Context, string) {
	t.Helper()
	row := fmt.Sprintf(`#lead-table tr[data-lead-id="%d"]`, lead)
	doStep(t, b.ctx, "open the lead list",
		chromedp.Navigate(fmt.Sprintf("%s/crm/lead/list/?user=%d&lang=%s", d.portal, user, lang)),
		chromedp.WaitVisible(chromedp.CSS(row)))
	doStep(t, b.ctx, "open the row's menu", chromedp.Click(chromedp.CSS(row+" .row-menu summary")))
	item := readStep(t, b.ctx, "read the app's item", chromedp.TextContent(chromedp.CSS(row+" a.menu-app")))
	doStep(t, b.ctx, "pick the app's item",
		chromedp.Click(chromedp.CSS(row+" a.menu-app")),
		chromedp.WaitVisible(chromedp.CSS("#list-slider #app-frame")))
	frame := b.appFrame(t, d)
	doStep(t, frame, "wait for the page's header", chromedp.WaitVisible(chromedp.CSS("h1.title")))
	waitFitted(t, b)
	return frame, strings.TrimSpace(item)
}

// TestBrowserListMenuRemoveAndUndo drives the simulated lead list in
// English, Russian and Arabic: the row menu offers the app's item under
// its title in the user's language, the slider loads the lead page,
// Remove all contacts asks in the page, the result offers Undo, and Undo
// restores the same links; axe-core finds nothing at each step. The
// admins' history then says the entries came from the lead list.
func TestBrowserListMenuRemoveAndUndo(t *testing.T) {
	d, portal, b, axe := installedUI(t)
	lead := simulator.SeedLeadThreeContacts
	before := portal.LeadContacts(lead)
	require.Len(t, before, 3)

	for _, l := range []struct {
		code, dir, item, question, success string
	}{
		{"en", "ltr", "Remove all contacts", "Unlink 3 contacts from this lead? The contacts themselves stay in the CRM.",
			"3 contacts unlinked from lead “Website inquiry – Groß GmbH”."},
		{"ru", "ltr", "Отвязать все контакты", "Отвязать 3 контакта от этого лида?", "Website inquiry – Groß GmbH"},
		{"ar", "rtl", "إزالة جميع جهات الاتصال", "هل تريد فصل 3", "Website inquiry – Groß GmbH"},
	} {
		frame, item := openListMenu(t, b, d, simulator.SeedSales, lead, l.code)
		assert.Equal(t, l.item, item, "%s: the row menu names the app's item in the user's language", l.code)
		attrs := readStep(t, frame, l.code+": read lang and dir", chromedp.Evaluate[[]string](
			`[document.documentElement.lang, document.documentElement.dir]`))
		assert.Equal(t, []string{l.code, l.dir}, attrs)
		assert.Contains(t, readStep(t, frame, l.code+": read the header", chromedp.Text(chromedp.CSS("h1.title"))), "Website inquiry – Groß GmbH")
		assert.Len(t, appContactIDs(t, frame), 3, "%s: the lead's contacts are listed", l.code)
		assert.Equal(t, l.item, strings.TrimSpace(readStep(t, frame, l.code+": read the button", chromedp.TextContent(chromedp.CSS("#remove")))),
			"%s: the menu item and the button say the same", l.code)
		requireNoHorizontalScroll(t, b, frame, l.code+": list menu slider")
		requireAxeClean(t, frame, axe, l.code+": list menu slider")

		doStep(t, frame, l.code+": click Remove all contacts", chromedp.Click(chromedp.CSS("#remove")))
		doStep(t, frame, l.code+": wait for the confirmation", chromedp.WaitVisible(chromedp.CSS("#confirm")))
		assert.Contains(t, readStep(t, frame, l.code+": read the question", chromedp.Text(chromedp.CSS("#confirm-text"))), l.question)
		assert.Len(t, portal.LeadContacts(lead), 3, "%s: asking changes nothing", l.code)
		requireAxeClean(t, frame, axe, l.code+": list menu confirmation")
		shot(t, b, frame, "listmenu-"+l.code+".png", "body")

		doStep(t, frame, l.code+": confirm", chromedp.Click(chromedp.CSS("#confirm-yes")))
		doStep(t, frame, l.code+": wait for the result", chromedp.WaitVisible(chromedp.CSS(".alert-success #undo")))
		waitFitted(t, b)
		assert.Contains(t, readStep(t, frame, l.code+": read the banner", chromedp.Text(chromedp.CSS(".alert-success"))), l.success)
		assert.Empty(t, portal.LeadContacts(lead), "%s: the links are gone", l.code)
		slider := readStep(t, b.ctx, l.code+": look for the slider", chromedp.Evaluate[bool](`!!document.querySelector("#list-slider #app-frame")`))
		assert.True(t, slider, "%s: the result shows in the slider", l.code)
		requireAxeClean(t, frame, axe, l.code+": list menu result")

		doStep(t, frame, l.code+": click Undo", chromedp.Click(chromedp.CSS("#undo")))
		doStep(t, frame, l.code+": wait for the restored list", chromedp.WaitVisible(chromedp.CSS("#contacts")))
		waitFitted(t, b)
		assert.Equal(t, before, portal.LeadContacts(lead), "%s: the same links, SORT and primary contact", l.code)
		assert.Len(t, appContactIDs(t, frame), 3)
		requireAxeClean(t, frame, axe, l.code+": list menu undone")
	}

	// The admins' history: three removals and three undos, each from the
	// lead list.
	doStep(t, b.ctx, "open the app from the left menu as the administrator",
		chromedp.Navigate(fmt.Sprintf("%s/?user=%d&lang=en", d.portal, simulator.SeedAdmin)),
		chromedp.Click(chromedp.CSS("#menu-app")),
		chromedp.WaitVisible(chromedp.CSS("#app-frame")))
	admin := b.appFrame(t, d)
	doStep(t, admin, "wait for the history", chromedp.WaitVisible(chromedp.CSS("#history")))
	vias := textsOf(t, admin, "read where entries came from", "#history > li .history-via")
	assert.Equal(t, []string{"from the lead list", "from the lead list", "from the lead list",
		"from the lead list", "from the lead list", "from the lead list"}, vias)
	requireAxeClean(t, admin, axe, "admins' page with list menu entries")
	requireNoProblems(t, b)
}
