//go:build !race

// The browser tests run without the race detector: see browser_helpers_test.go.

package main

// Browser test of issue 14's automation rule, through the simulated
// portal's lead card: an admin puts "Remove all contacts" on the Junk
// stage, a salesperson moves the lead there, the rule runs with the
// rule's user's token and its log shows the outcome the app sent back.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// TestBrowserAutomationRule: the rule the install registered is offered
// in the designer under its name in the admin's language; added on Junk
// to run as the salesperson, it fires when the lead becomes Junk, the
// lead's contacts are gone, the rule's log reads the outcome and the count
// with the app's log line, and the admins' history says "by automation".
func TestBrowserAutomationRule(t *testing.T) {
	d, portal, b, axe := installedUI(t)
	lead := simulator.SeedLeadThreeContacts
	require.Len(t, portal.LeadContacts(lead), 3)
	card := fmt.Sprintf("%s/crm/lead/details/%d/?user=%%d&lang=%%s", d.portal, lead)

	doStep(t, b.ctx, "open the lead card as the administrator, in Russian",
		chromedp.Navigate(fmt.Sprintf(card, simulator.SeedAdmin, "ru")),
		chromedp.WaitVisible(chromedp.CSS("#automation-form")))
	assert.Equal(t, []string{"Отвязать все контакты"}, textsOf(t, b.ctx, "read the robots offered", `#automation-form select[name=code] option`),
		"the designer lists the rule by its Russian name")

	doStep(t, b.ctx, "put the rule on Junk, run as the salesperson",
		chromedp.Navigate(fmt.Sprintf(card, simulator.SeedAdmin, "en")),
		chromedp.WaitVisible(chromedp.CSS("#automation-form")),
		chromedp.SetValue(chromedp.CSS(`#automation-form select[name=stage]`), "JUNK"),
		chromedp.SetValue(chromedp.CSS(`#automation-form input[name=run_as]`), fmt.Sprint(simulator.SeedSales)),
		chromedp.Click(chromedp.CSS("#automation-add")),
		chromedp.WaitVisible(chromedp.CSS("#automation-stages")))
	assert.Equal(t, []string{"JUNK: leadcontacts_remove_all"}, textsOf(t, b.ctx, "read the stages' robots", "#automation-stages li"))

	doStep(t, b.ctx, "move the lead to Junk as the salesperson",
		chromedp.Navigate(fmt.Sprintf(card, simulator.SeedSales, "en")),
		chromedp.WaitVisible(chromedp.CSS("#stage-form")),
		chromedp.SetValue(chromedp.CSS(`#stage-form select[name=stage]`), "JUNK"),
		chromedp.Click(chromedp.CSS("#stage-move")),
		chromedp.WaitVisible(chromedp.CSS(`#robot-log li[data-state="completed"]`)))
	log := strings.Join(textsOf(t, b.ctx, "read the rule's log", "#robot-log li"), "\n")
	assert.Contains(t, log, "as user #2 · completed · count=3, outcome=removed")
	assert.Contains(t, log, "Contacts unlinked from the lead: 3. The contacts themselves stay in the CRM.")
	assert.Empty(t, portal.LeadContacts(lead), "the rule unlinked the contacts")
	pageShot(t, b, "rule-en.png", "#tab-body")

	// The admins' history says who did it and how.
	doStep(t, b.ctx, "open the app from the left menu as the administrator",
		chromedp.Navigate(fmt.Sprintf("%s/?user=%d&lang=en", d.portal, simulator.SeedAdmin)),
		chromedp.Click(chromedp.CSS("#menu-app")),
		chromedp.WaitVisible(chromedp.CSS("#app-frame")))
	admin := b.appFrame(t, d)
	doStep(t, admin, "wait for the history", chromedp.WaitVisible(chromedp.CSS("#history")))
	assert.Equal(t, []string{"by automation"}, textsOf(t, admin, "read where the entry came from", "#history > li .history-via"))
	rule := textsOf(t, admin, "read the rule's row", `#placements li[data-placement="leadcontacts_remove_all"]`)
	require.Len(t, rule, 1)
	assert.Contains(t, rule[0], "bound")
	requireAxeClean(t, admin, axe, "admins' page with an automation entry")
	requireNoProblems(t, b)
}
