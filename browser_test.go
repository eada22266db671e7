//go:build !race

// The browser tests run without the race detector: chromedp v0.23.0 races
// with itself when it attaches to a cross-site iframe (target.go, domEvent
// against documentUpdated), which no code of ours can avoid. .ci/run runs
// them in a step of their own, after the -race run of everything else.

package main

// End-to-end tests of the demo flow in headless Chromium: the real binary's
// run function in -demo mode (app plus simulated Bitrix24 portal), driven
// through the portal's own pages as a user would. The portal runs on
// localhost and the app on 127.0.0.1, two sites, so the app's frame is
// cross-site exactly as in a real portal: third-party cookie rules and CSP
// frame-ancestors apply. Site isolation stays on; the tests attach to the
// app's iframe target (browser_helpers_test.go).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// TestBrowserDemoFlow is the demo as a user clicks it: the administrator
// installs the app, a sales user opens a lead's app tab and removes its
// three contacts. It runs with third-party cookies allowed and blocked,
// each proven by a probe first: the app must not need cookies.
func TestBrowserDemoFlow(t *testing.T) {
	for _, policy := range []cookiePolicy{thirdPartyCookiesAllowed, thirdPartyCookiesBlocked} {
		t.Run(policy.name, func(t *testing.T) {
			d := startDemoApp(t)
			b := newBrowser(t, policy)
			b.requireCookiePolicy(t, policy)
			installApp(t, b, d)

			frame := openLeadTab(t, b, d, simulator.SeedSales, simulator.SeedLeadThreeContacts)
			leadTitle := readStep(t, b.ctx, "read the lead's title", chromedp.Text(chromedp.CSS("#lead-title")))
			t.Logf("the app lists %q", textsOf(t, frame, "read the app's contact names", "#contacts li .contact-link"))
			inFrame, onCard := appContactIDs(t, frame), portalContactIDs(t, b)
			require.Len(t, inFrame, 3, "the app's tab lists the lead's contacts")
			require.Len(t, onCard, 3, "the portal's card lists the lead's contacts")
			assert.ElementsMatch(t, onCard, inFrame, "the app lists the same contacts as the portal")
			assertAppCookiesPartitioned(t, b)
			if !policy.allowsThirdParty() {
				// Blocking third-party cookies still admits the app's
				// Partitioned cookie. Delete it, so this run proves the
				// removal needs no cookie at all (Safari, older browsers).
				b.deleteAppCookies(t)
			}

			doStep(t, frame, "click Remove all contacts", chromedp.Click(chromedp.CSS("#remove")))
			doStep(t, frame, "confirm the removal", chromedp.Click(chromedp.CSS("#confirm-yes")))

			// The confirmation posts the form: the frame shows the result
			// page, whose script asks the portal to reload the card. The
			// navigation stays on the app's site, so the frame keeps its
			// target and frame keeps working.
			doStep(t, frame, "wait for the result page", chromedp.WaitVisible(chromedp.CSS(".alert-success")))
			banner := readStep(t, frame, "read the success banner", chromedp.Text(chromedp.CSS(".alert-success")))
			assert.Contains(t, banner, fmt.Sprintf("3 contacts unlinked from lead “%s”.", leadTitle))
			doStep(t, b.ctx, "wait until reloadData empties the portal's contact list",
				chromedp.WaitVisible(chromedp.CSS("#portal-contacts-empty")))
			assert.Empty(t, portalContactIDs(t, b), "the portal's card lists no contact after reloadData")
			assert.Zero(t, storedContacts(t, b, simulator.SeedLeadThreeContacts), "the portal has no contact left on the lead")
			// What the removal POST carried on the wire: the app's cookie
			// when it was kept (which also shows the recording works),
			// nothing at all once it was deleted.
			sent := b.rec.cookiesSent("POST", d.app+"/placements/lead-tab/remove")
			require.NotEmpty(t, sent, "the removal POST was recorded")
			for _, c := range sent {
				if policy.allowsThirdParty() {
					assert.Contains(t, c, "__Host-lcs=", "the removal POST carried the app's cookie")
				} else {
					assert.Empty(t, c, "the removal POST carried a Cookie header")
				}
			}

			// The docs use the run with third-party cookies allowed, what
			// most users have; both runs look the same.
			saveScreenshot(t, b, "lead-tab-success-en.png", policy == thirdPartyCookiesAllowed)
			requireNoProblems(t, b)
		})
	}
}

// TestBrowserAccessDenied: a read-only user may open the tab but not
// remove. Bitrix24 refuses the removal with that user's own token, and the
// app explains it; nothing changes on the portal.
func TestBrowserAccessDenied(t *testing.T) {
	d := startDemoApp(t)
	b := newBrowser(t, thirdPartyCookiesBlocked)
	installApp(t, b, d)

	frame := openLeadTab(t, b, d, simulator.SeedViewer, simulator.SeedLeadThreeContacts)
	require.Len(t, appContactIDs(t, frame), 3)
	doStep(t, frame, "click Remove all contacts", chromedp.Click(chromedp.CSS("#remove")))
	doStep(t, frame, "confirm the removal", chromedp.Click(chromedp.CSS("#confirm-yes")))

	doStep(t, frame, "wait for the result page", chromedp.WaitVisible(chromedp.CSS(".alert-danger")))
	alert := readStep(t, frame, "read the error banner", chromedp.Text(chromedp.CSS(".alert-danger")))
	assert.Contains(t, alert, "You do not have permission to change this lead.", "the ACCESS_DENIED explanation")
	code := readStep(t, frame, "read the error code", chromedp.Text(chromedp.CSS(".alert-danger .alert-code")))
	assert.Contains(t, code, "ACCESS_DENIED", "the Bitrix24 error code is shown for support")
	assert.Empty(t, textsOf(t, frame, "look for a success banner", ".alert-success"))

	assert.Len(t, portalContactIDs(t, b), 3, "the portal's card still lists the contacts")
	assert.Equal(t, 3, storedContacts(t, b, simulator.SeedLeadThreeContacts), "the portal still has the contacts")
	// The result page is answered with HTTP 403 on purpose, and Chromium
	// logs that status for the frame's document.
	requireNoProblems(t, b, "the server responded with a status of 403 (Forbidden) ["+d.app+"/")
}

// TestBrowserCancelKeepsContacts: the inline confirmation's Cancel sends
// nothing, and gives the keyboard focus back to the button, for keyboard
// and screen reader users.
func TestBrowserCancelKeepsContacts(t *testing.T) {
	d := startDemoApp(t)
	b := newBrowser(t, thirdPartyCookiesBlocked)
	installApp(t, b, d)

	frame := openLeadTab(t, b, d, simulator.SeedSales, simulator.SeedLeadThreeContacts)
	before := b.rec.requestsTo(d.app)
	doStep(t, frame, "click Remove all contacts", chromedp.Click(chromedp.CSS("#remove")))
	doStep(t, frame, "wait for the confirmation to replace the button",
		chromedp.WaitVisible(chromedp.CSS("#confirm")),
		chromedp.WaitNotVisible(chromedp.CSS("#remove")))
	doStep(t, frame, "click Cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))
	doStep(t, frame, "wait until the confirmation is gone",
		chromedp.WaitNotPresent(chromedp.CSS("#confirm")),
		chromedp.WaitVisible(chromedp.CSS("#remove")))

	focused := readStep(t, frame, "read the focused element",
		chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
	assert.Equal(t, "remove", focused, "Cancel gives the focus back to the Remove button")
	assert.Len(t, appContactIDs(t, frame), 3, "the tab still lists the contacts")

	// A form submission would have started at once; give its events a
	// moment to arrive before concluding that there was none.
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, before, b.rec.requestsTo(d.app), "Cancel must not send any request to the app")
	assert.Len(t, portalContactIDs(t, b), 3, "the portal's card still lists the contacts")
	assert.Equal(t, 3, storedContacts(t, b, simulator.SeedLeadThreeContacts), "the portal still has the contacts")
	requireNoProblems(t, b)
}

// installApp installs the app as a portal administrator does, through the
// UI: the Market link, the installer slider framing the app's installer,
// which calls BX24.installFinish(); the portal then returns home.
func installApp(t *testing.T, b *browser, d *runningDemo) {
	t.Helper()
	doStep(t, b.ctx, "open the portal as the administrator",
		chromedp.Navigate(fmt.Sprintf("%s/?user=%d", d.portal, simulator.SeedAdmin)))
	state := readStep(t, b.ctx, "read the install state", chromedp.AttributeValue(chromedp.CSS("#install-state"), "data-state"))
	require.Equal(t, "none", state.Value, "a fresh demo portal has no app installed")
	doStep(t, b.ctx, "click Install app", chromedp.Click(chromedp.CSS("#install-app")))
	doStep(t, b.ctx, "wait for the installer to finish and the portal to return home",
		chromedp.WaitVisible(chromedp.CSS(`#install-state[data-state="installed"]`)))
}

// openLeadTab opens a lead card on the app's tab as user, and returns the
// context of the app's frame. The portal fills the frame with a cross-site
// form POST, as Bitrix24 does.
func openLeadTab(t *testing.T, b *browser, d *runningDemo, user, lead int) context.Context {
	t.Helper()
	// lang=en: the assertions and the screenshot's name are English,
	// whatever the portal's default language.
	doStep(t, b.ctx, "open the lead card on the app's tab",
		chromedp.Navigate(fmt.Sprintf("%s/crm/lead/details/%d/?user=%d&tab=app&lang=en", d.portal, lead, user)),
		chromedp.WaitVisible(chromedp.CSS("#app-frame")))
	me := readStep(t, b.ctx, "read the signed-in user", chromedp.AttributeValue(chromedp.CSS("#current-user"), "data-user-id"))
	require.Equal(t, strconv.Itoa(user), me.Value, "the portal switched to user %d", user)
	frame := b.appFrame(t, d)
	doStep(t, frame, "wait for the Remove button", chromedp.WaitVisible(chromedp.CSS("#remove")))
	return frame
}

// appContactIDs returns the IDs of the contacts the app's tab lists, from
// the links that open them (/crm/contact/details/ID/).
func appContactIDs(t *testing.T, frame context.Context) []string {
	t.Helper()
	return readStep(t, frame, "read the app's contact list", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#contacts li .contact-link"), a => a.dataset.path.split("/").filter(Boolean).pop())`))
}

// portalContactIDs returns the IDs of the contacts the portal's own card
// lists, as rendered now (reloadData re-renders the list).
func portalContactIDs(t *testing.T, b *browser) []string {
	t.Helper()
	return readStep(t, b.ctx, "read the portal's contact list", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#portal-contacts li"), li => li.dataset.contactId)`))
}

// storedContacts asks the portal's server, not the card's DOM, how many
// contacts a lead has (the endpoint behind reloadData).
func storedContacts(t *testing.T, b *browser, lead int) int {
	t.Helper()
	js := fmt.Sprintf(`fetch("/sim/api/lead/%d/contacts", {credentials: "same-origin"}).then(r => r.json()).then(rows => rows.length)`, lead)
	return readStep(t, b.ctx, "ask the portal for the lead's contacts", chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
}

// assertAppCookiesPartitioned checks the app's cookies in the jar: it may
// set its optional browser-binding cookie, but only Partitioned (CHIPS),
// keyed to the portal's site, never as a plain third-party cookie.
func assertAppCookiesPartitioned(t *testing.T, b *browser) {
	t.Helper()
	for _, c := range b.appCookies(t) {
		key := "none"
		if c.PartitionKey != nil {
			key = c.PartitionKey.TopLevelSite
		}
		t.Logf("app cookie in the jar: %s (partition: %s, SameSite=%s, Secure=%v)", c.Name, key, c.SameSite, c.Secure)
		assert.NotNil(t, c.PartitionKey, "the app's cookie %s must be partitioned", c.Name)
	}
}

// saveScreenshot saves a PNG of the whole lead card (the page with the
// app's frame) to the test's temporary directory, and for the docs to
// $SCREENSHOT_DIR when that is set and forDocs is true.
func saveScreenshot(t *testing.T, b *browser, name string, forDocs bool) {
	t.Helper()
	png := readStep(t, b.ctx, "take a screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot of the lead card: %s", path)
	if dir := os.Getenv("SCREENSHOT_DIR"); dir != "" && forDocs {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
		t.Logf("screenshot for the docs: %s", filepath.Join(dir, name))
	}
}

// requireNoProblems fails the test if the portal page or any app frame
// logged a JavaScript error, threw an uncaught exception, violated a CSP,
// failed a request or tried to reach a third party. A problem containing
// one of the expected strings is only logged.
func requireNoProblems(t *testing.T, b *browser, expected ...string) {
	t.Helper()
	var problems []string
	for _, p := range b.rec.allProblems() {
		if slices.ContainsFunc(expected, func(e string) bool { return strings.Contains(p, e) }) {
			t.Logf("expected: %s", p)
			continue
		}
		problems = append(problems, p)
	}
	require.Empty(t, problems, "the browser reported problems:\n%s", strings.Join(problems, "\n"))
}
