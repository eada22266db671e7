//go:build !race

// The browser tests run without the race detector: chromedp v0.23.0 races
// with itself when it attaches to a cross-site iframe (target.go, domEvent
// against documentUpdated), which no code of ours can avoid. .ci/run runs
// them in a step of their own, after the -race run of everything else.

package main

// Browser test of the demo's own controls (issue 13): the language picker
// in the simulated portal's top bar reaches the app as Bitrix24 sends it
// (LANG in the frame POST's query) and sticks, and switching user keeps
// the lead and the tab.

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// cyrillic matches text written in Russian (the app's Russian catalogue
// is what the tab must speak; its exact wording is the catalogue's test).
var cyrillic = regexp.MustCompile(`\p{Cyrillic}{3,}`)

func TestBrowserDemoLanguagePickerAndUserSwitch(t *testing.T) {
	d, portal, b, axe := installedUI(t)
	lead := simulator.SeedLeadThreeContacts

	// Pick Русский on a lead card's General tab, as the sales user.
	doStep(t, b.ctx, "open the lead card as the sales user",
		chromedp.Navigate(fmt.Sprintf("%s/crm/lead/details/%d/?user=%d", d.portal, lead, simulator.SeedSales)),
		chromedp.WaitVisible(chromedp.CSS("#lang-picker")))
	label := readStep(t, b.ctx, "read the picker's Russian entry", chromedp.TextContent(chromedp.CSS(`#lang-picker option[value="ru"]`)))
	require.Equal(t, "Русский", label, "each language is named in itself")
	doStep(t, b.ctx, "pick Русский",
		chromedp.SetValue(chromedp.CSS("#lang-picker"), "ru"),
		chromedp.Click(chromedp.CSS("#lang-apply")),
		chromedp.WaitReady(chromedp.CSS(`#lang-picker option[value="ru"][selected]`)))

	requireAxeClean(t, b.ctx, axe, "portal page with the picker")
	// The app's tab, opened by a click (no ?lang= anywhere), is Russian.
	doStep(t, b.ctx, "open the app's tab",
		chromedp.Click(chromedp.CSS(`#lead-tabs .tab[data-tab="app"]`)),
		chromedp.WaitVisible(chromedp.CSS("#app-frame")))
	assert.NotContains(t, currentURL(t, b.ctx), "lang=", "the language comes from the portal's setting, not the URL")
	frame := b.appFrame(t, d)
	doStep(t, frame, "wait for the tab's header", chromedp.WaitVisible(chromedp.CSS("h1.title")))
	waitFitted(t, b)
	requireRussian(t, frame, "the tab", "#count")
	requireAxeClean(t, frame, axe, "ru tab opened from the picker")

	// Remove: the result page is still Russian.
	doStep(t, frame, "click Remove and confirm",
		chromedp.Click(chromedp.CSS("#remove")),
		chromedp.WaitVisible(chromedp.CSS("#confirm")),
		chromedp.Click(chromedp.CSS("#confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS(".alert-success")))
	waitFitted(t, b)
	assert.Empty(t, portal.LeadContacts(lead))
	requireRussian(t, frame, "the result", ".alert-success")
	requireAxeClean(t, frame, axe, "ru result")

	// Switch to the administrator: same lead, same tab, still Russian.
	doStep(t, b.ctx, "switch to the administrator",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`a.user-link[data-user-id="%d"]`, simulator.SeedAdmin))),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#current-user[data-user-id="%d"]`, simulator.SeedAdmin))))
	u := currentURL(t, b.ctx)
	assert.Contains(t, u, fmt.Sprintf("/crm/lead/details/%d/", lead), "the same lead")
	selected := readStep(t, b.ctx, "read the selected tab",
		chromedp.AttributeValue(chromedp.CSS(`#lead-tabs .tab[aria-selected="true"]`), "data-tab"))
	assert.Equal(t, "app", selected.Value, "the same tab")
	frame = b.appFrame(t, d)
	doStep(t, frame, "wait for the tab's header", chromedp.WaitVisible(chromedp.CSS("h1.title")))
	requireRussian(t, frame, "the tab after the switch", "h1.title")
	user := readStep(t, b.ctx, "read the signed-in user", chromedp.AttributeValue(chromedp.CSS("#current-user"), "data-user-id"))
	assert.Equal(t, strconv.Itoa(simulator.SeedAdmin), user.Value)
	requireNoProblems(t, b)
}

// requireRussian checks that the app's page in frame says it is Russian
// and that the element sel reads in Russian.
func requireRussian(t *testing.T, frame context.Context, what, sel string) {
	t.Helper()
	lang := readStep(t, frame, what+": read the page's language", chromedp.Evaluate[string](`document.documentElement.lang`))
	assert.Equal(t, "ru", lang, "%s: the app's page language", what)
	text := readStep(t, frame, what+": read "+sel, chromedp.Text(chromedp.CSS(sel)))
	assert.Regexp(t, cyrillic, text, "%s: %s reads in Russian", what, sel)
}

func currentURL(t *testing.T, ctx context.Context) string {
	t.Helper()
	return strings.TrimSpace(readStep(t, ctx, "read the page's address", chromedp.Evaluate[string](`location.href`)))
}
