//go:build !race

// The browser tests run without the race detector: chromedp v0.23.0 races
// with itself when it attaches to a cross-site iframe (target.go, domEvent
// against documentUpdated), which no code of ours can avoid. .ci/run runs
// them in a step of their own, after the -race run of everything else.

package main

// Browser tests of issue 5, the lead tab as users expect it: the whole
// flow with Undo and the admins' history, keyboard-only use, every error
// banner, Russian and Arabic, 1280 and 400 px without horizontal scroll,
// zero axe-core violations, and the screenshots the README shows. They
// share the harness of browser_helpers_test.go; the demo is built through
// startDemo (so the test holds the simulated portal and can inject faults)
// and the app runs through run, configured from the environment as in
// production.

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/simulator"
)

// installedUI is the common start of a UI test: the demo portal and the
// app, a browser that blocks third-party cookies as Safari does, the
// app installed through it, and axe-core's source for the checks.
func installedUI(t *testing.T) (*runningDemo, *simulator.Portal, *browser, string) {
	t.Helper()
	d, portal := startDemoPortal(t)
	b := newBrowser(t, thirdPartyCookiesBlocked)
	axe := axeSource(t)
	installApp(t, b, d)
	return d, portal, b, axe
}

// startDemoPortal is startDemoApp with the simulated portal in hand: the
// demo environment comes from startDemo, and the app from run without
// -demo, fed the demo's configuration through getenv, so run's own
// configuration path is what serves the app.
func startDemoPortal(t *testing.T) (*runningDemo, *simulator.Portal) {
	t.Helper()
	m, err := manifest.Parse(appJSON)
	require.NoError(t, err)
	dir := t.TempDir()
	demoEnv := map[string]string{"ADDR": "127.0.0.1:0", "DEMO_PORTAL_ADDR": "127.0.0.1:0", "DATABASE_URL": "sqlite:" + filepath.Join(dir, "app.db")}
	demo, err := startDemo(func(k string) string { return demoEnv[k] }, m, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	cfg := demo.cfg
	// run listens itself: hand it the address startDemo reserved.
	require.NoError(t, demo.ln.Close())
	env := map[string]string{
		"B24_CLIENT_ID":          cfg.ClientID,
		"B24_CLIENT_SECRET":      cfg.ClientSecret.Reveal(),
		"APP_BASE_URL":           cfg.BaseURL.String(),
		"APP_SECRET":             hex.EncodeToString(cfg.Secret),
		"DATABASE_URL":           cfg.DatabaseURL,
		"ADDR":                   cfg.Addr,
		"B24_OAUTH_SERVERS":      strings.Join(cfg.OAuthServers, ","),
		"B24_ALLOW_HTTP":         "true",
		"B24_JS_URL":             cfg.JSURL,
		"HISTORY_RETENTION_DAYS": "90", // the default, as the README's screenshots show it
	}
	d := &runningDemo{portal: strings.TrimSuffix(demo.portalURL, "/"), out: &lineLog{}}
	d.serve(t, nil, func(k string) string { return env[k] }, demo.close)
	return d, demo.portal
}

// openTab opens a lead card on the app's tab as user, in lang, and waits
// for the app's page; it returns the frame's context.
func openTab(t *testing.T, b *browser, d *runningDemo, user, lead int, lang string) context.Context {
	t.Helper()
	doStep(t, b.ctx, "open the lead card on the app's tab",
		chromedp.Navigate(fmt.Sprintf("%s/crm/lead/details/%d/?user=%d&tab=app&lang=%s", d.portal, lead, user, lang)),
		chromedp.WaitVisible(chromedp.CSS("#app-frame")))
	frame := b.appFrame(t, d)
	doStep(t, frame, "wait for the tab's header", chromedp.WaitVisible(chromedp.CSS("h1.title")))
	waitFitted(t, b)
	return frame
}

// waitFitted waits until BX24.fitWindow has sized the frame to its page.
func waitFitted(t *testing.T, b *browser) {
	t.Helper()
	_, err := runStep(t, b.ctx, "wait for fitWindow", chromedp.Poll[bool](
		`(() => { const f = document.getElementById("app-frame"); return !!f && f.style.height !== "" })()`,
		chromedp.WithPollingInterval(20*time.Millisecond)))
	require.NoError(t, err)
}

// settle waits until the frame has its final size for the page it shows
// (fitWindow has run after the last navigation) and has painted, so a
// screenshot never catches a frame between two documents.
func settle(t *testing.T, b *browser, frame context.Context) {
	t.Helper()
	h := readStep(t, frame, "measure the page", chromedp.Poll[int](
		`document.readyState === "complete" && Math.ceil(document.documentElement.scrollHeight)`,
		chromedp.WithPollingInterval(20*time.Millisecond)))
	_, err := runStep(t, b.ctx, "wait for the frame's final height", chromedp.Poll[bool](
		fmt.Sprintf(`document.getElementById("app-frame").style.height === "%dpx"`, h),
		chromedp.WithPollingInterval(20*time.Millisecond)))
	require.NoError(t, err)
	doStep(t, frame, "wait for a paint", chromedp.Evaluate[chromedp.Void](
		`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))`, chromedp.EvalAwaitPromise))
}

// requireNoHorizontalScroll checks the portal page and the app's frame.
func requireNoHorizontalScroll(t *testing.T, b *browser, frame context.Context, what string) {
	t.Helper()
	js := `document.documentElement.scrollWidth <= window.innerWidth`
	assert.True(t, readStep(t, b.ctx, "measure the page", chromedp.Evaluate[bool](js)), "%s: the portal page scrolls sideways", what)
	assert.True(t, readStep(t, frame, "measure the frame", chromedp.Evaluate[bool](js)), "%s: the app's frame scrolls sideways", what)
}

// axeSource reads axe-core's axe.min.js from AXE_JS (default: where
// .ci/run installs it). Without it the accessibility checks skip locally
// and fail in CI.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AXE_JS")
	if path == "" {
		home, _ := os.UserHomeDir()
		path = filepath.Join(home, ".cache", "leadcontacts-axe", "node_modules", "axe-core", "axe.min.js")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("axe-core is missing at %s (AXE_JS); .ci/run installs it with npm", path)
		}
		t.Skipf("axe-core is missing at %s: npm install --prefix ~/.cache/leadcontacts-axe axe-core (or set AXE_JS); CI runs these checks", path)
	}
	return string(b)
}

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// requireAxeClean injects axe-core into the app's frame through DevTools
// (the page's CSP allows no foreign script, and needs not to) and runs it
// on the whole document: WCAG 2.x A and AA rules, contrast included.
func requireAxeClean(t *testing.T, frame context.Context, axe, what string) {
	t.Helper()
	doStep(t, frame, "inject axe-core", chromedp.Evaluate[chromedp.Void](axe+";void 0"))
	js := `axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}})
		.then(r => r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help,
			nodes: v.nodes.map(n => n.target.join(" ") + ": " + (n.failureSummary || ""))})))`
	got := readStep(t, frame, "run axe-core", chromedp.Evaluate[[]axeViolation](js, chromedp.EvalAwaitPromise))
	for _, v := range got {
		t.Errorf("%s: axe %s (%s): %s\n  %s", what, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n  "))
	}
}

// shot saves a PNG of the element (the tab body with the app's frame) to
// the test's directory and, when SCREENSHOT_DIR is set (the README's
// pictures: SCREENSHOT_DIR=docs/screenshots), there too.
func shot(t *testing.T, b *browser, frame context.Context, name, selector string) {
	t.Helper()
	settle(t, b, frame)
	pageShot(t, b, name, selector)
}

// pageShot saves a PNG of an element of the portal's own page, as shot
// does, without waiting for an app frame.
func pageShot(t *testing.T, b *browser, name, selector string) {
	t.Helper()
	png := readStep(t, b.ctx, "take a screenshot", chromedp.Screenshot(chromedp.CSS(selector)))
	saveShot(t, name, png)
}

// saveShot writes a screenshot to the test's directory and, when
// SCREENSHOT_DIR is set, there too.
func saveShot(t *testing.T, name string, png []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(t.TempDir(), name), png, 0o644))
	if dir := os.Getenv("SCREENSHOT_DIR"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
		t.Logf("screenshot: %s (%d bytes)", filepath.Join(dir, name), len(png))
	}
}

// activeID is the id of the focused element in the frame.
func activeID(t *testing.T, frame context.Context) string {
	t.Helper()
	return readStep(t, frame, "read the focused element",
		chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
}

// waitFocused waits until the element with id has the focus in the frame:
// app.js moves it when the document is ready, which may come after the
// element is visible. It fails, naming where the focus is, if it never does.
func waitFocused(t *testing.T, frame context.Context, id string) {
	t.Helper()
	js := fmt.Sprintf(`document.activeElement !== null && document.activeElement.id === %q`, id)
	if _, err := runStep(t, frame, "wait for #"+id+" to take the focus",
		chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		t.Fatalf("#%s never took the focus (it is on #%s): %v", id, activeID(t, frame), err)
	}
}

// pressKey sends a key to whatever has the focus: the browser routes it
// to the focused frame, as for a real keyboard.
func pressKey(t *testing.T, b *browser, key string) {
	t.Helper()
	doStep(t, b.ctx, "press a key", chromedp.KeyEvent(key))
}

// tabTo presses Tab until the element with id has the focus in the frame.
func tabTo(t *testing.T, b *browser, frame context.Context, id string) {
	t.Helper()
	for range 12 {
		if activeID(t, frame) == id {
			return
		}
		pressKey(t, b, kb.Tab)
	}
	t.Fatalf("Tab never reached #%s (focus is on #%s)", id, activeID(t, frame))
}

// requireFocusVisible checks the focused element draws a focus ring.
func requireFocusVisible(t *testing.T, frame context.Context) {
	t.Helper()
	ok := readStep(t, frame, "read the focus ring", chromedp.Evaluate[bool](
		`(() => { const e = document.activeElement; const s = getComputedStyle(e);
			return e.matches(":focus-visible") && s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2 })()`))
	assert.True(t, ok, "the focused element shows a visible focus ring")
}

// TestBrowserUIRemoveAndUndo is the whole flow by keyboard only: Tab to
// the danger button, Enter, Tab to the confirmation, Enter; the success
// banner offers Undo, which restores the same contacts with their SORT
// and IS_PRIMARY; the admins' page then lists both in the history.
func TestBrowserUIRemoveAndUndo(t *testing.T) {
	d, portal, b, axe := installedUI(t)
	before := portal.LeadContacts(simulator.SeedLeadThreeContacts)
	require.Len(t, before, 3)

	frame := openTab(t, b, d, simulator.SeedSales, simulator.SeedLeadThreeContacts, "en")
	assert.Equal(t, "3 linked contacts", strings.TrimSpace(readStep(t, frame, "read the count", chromedp.Text(chromedp.CSS("#count")))))
	assert.Equal(t, []string{"primary"}, textsOf(t, frame, "read the badges", "#contacts .badge"))
	assert.Contains(t, readStep(t, frame, "read the header", chromedp.Text(chromedp.CSS("h1.title"))), "Website inquiry – Groß GmbH")
	requireNoHorizontalScroll(t, b, frame, "tab at 1280 px")
	requireAxeClean(t, frame, axe, "tab with contacts")
	shot(t, b, frame, "tab-en.png", "#tab-body")

	// Keyboard only. The frame's document takes the focus first, as a
	// click into the frame would give it.
	doStep(t, frame, "focus the frame", chromedp.Evaluate[chromedp.Void](`window.focus()`))
	tabTo(t, b, frame, "remove")
	requireFocusVisible(t, frame)
	pressKey(t, b, kb.Enter)
	doStep(t, frame, "wait for the confirmation", chromedp.WaitVisible(chromedp.CSS("#confirm")))
	assert.Equal(t, "confirm", activeID(t, frame), "the question takes the focus, not the destructive button")
	assert.Equal(t, "Unlink 3 contacts from this lead? The contacts themselves stay in the CRM.",
		strings.TrimSpace(readStep(t, frame, "read the question", chromedp.Text(chromedp.CSS("#confirm-text")))))
	pressKey(t, b, kb.Tab)
	assert.Equal(t, "confirm-yes", activeID(t, frame))
	requireFocusVisible(t, frame)
	requireAxeClean(t, frame, axe, "confirmation")
	shot(t, b, frame, "confirm-en.png", "#tab-body")
	pressKey(t, b, kb.Enter)

	doStep(t, frame, "wait for the result", chromedp.WaitVisible(chromedp.CSS(".alert-success #undo")))
	waitFitted(t, b)
	assert.Contains(t, readStep(t, frame, "read the banner", chromedp.Text(chromedp.CSS(".alert-success"))),
		"3 contacts unlinked from lead “Website inquiry – Groß GmbH”. The contacts themselves stay in the CRM.")
	assert.Equal(t, "polite", readStep(t, frame, "read aria-live", chromedp.Evaluate[string](`document.getElementById("banner").getAttribute("aria-live")`)))
	assert.Empty(t, portal.LeadContacts(simulator.SeedLeadThreeContacts))
	requireAxeClean(t, frame, axe, "success with Undo")
	shot(t, b, frame, "success-en.png", "#tab-body")
	requireAxeClean(t, frame, axe, "empty state")

	doStep(t, frame, "click Undo", chromedp.Click(chromedp.CSS("#undo")))
	doStep(t, frame, "wait for the restored list", chromedp.WaitVisible(chromedp.CSS("#contacts")))
	assert.Contains(t, readStep(t, frame, "read the banner", chromedp.Text(chromedp.CSS(".alert-success"))),
		"3 contacts are linked to lead “Website inquiry – Groß GmbH” again.")
	assert.Equal(t, before, portal.LeadContacts(simulator.SeedLeadThreeContacts), "the same links, SORT and primary contact")
	assert.Len(t, appContactIDs(t, frame), 3)
	doStep(t, b.ctx, "wait until reloadData refills the card", chromedp.WaitVisible(chromedp.CSS("#portal-contacts li")))

	// The admins' page, from the portal's left menu, lists both actions.
	doStep(t, b.ctx, "open the app from the left menu as the administrator",
		chromedp.Navigate(fmt.Sprintf("%s/?user=%d", d.portal, simulator.SeedAdmin)),
		chromedp.Click(chromedp.CSS("#menu-app")),
		chromedp.WaitVisible(chromedp.CSS("#app-frame")))
	admin := b.appFrame(t, d)
	doStep(t, admin, "wait for the history", chromedp.WaitVisible(chromedp.CSS("#history")))
	waitFitted(t, b)
	rows := textsOf(t, admin, "read the history", "#history > li")
	require.Len(t, rows, 2)
	assert.Contains(t, rows[0], "Undo: 3 contacts linked again")
	assert.Contains(t, rows[1], "Unlinked 3 contacts")
	assert.Contains(t, rows[1], "Siobhán O'Connor")
	assert.Contains(t, readStep(t, admin, "read the placements", chromedp.TextContent(chromedp.CSS("#placements .badge"))), "bound")
	paths := readStep(t, admin, "read the lead links", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#history a[data-path]"), a => a.dataset.path)`))
	assert.Equal(t, []string{"/crm/lead/details/1/", "/crm/lead/details/1/"}, paths)
	requireNoHorizontalScroll(t, b, admin, "admins' page")
	requireAxeClean(t, admin, axe, "admins' page")

	// Re-bind, then a lead link opens the lead in Bitrix24's slider.
	doStep(t, admin, "click Bind again", chromedp.Click(chromedp.CSS("#rebind")))
	doStep(t, admin, "wait for the result", chromedp.WaitVisible(chromedp.CSS(".alert-success")))
	assert.Len(t, portal.Placements(), 2, "re-binding keeps exactly one tab and one list menu item")
	doStep(t, admin, "open a lead from the history", chromedp.Click(chromedp.CSS("#history a[data-path]")))
	doStep(t, b.ctx, "wait for the slider", chromedp.WaitVisible(chromedp.CSS("#slider")))
	src := readStep(t, b.ctx, "read the slider", chromedp.Evaluate[string](`document.getElementById("slider-frame").getAttribute("src")`))
	assert.Equal(t, "/crm/lead/details/1/", src)

	// A sales user gets the polite page.
	doStep(t, b.ctx, "open the app as a sales user",
		chromedp.Navigate(fmt.Sprintf("%s/marketplace/app/?user=%d", d.portal, simulator.SeedSales)),
		chromedp.WaitVisible(chromedp.CSS("#app-frame")))
	notAdmin := b.appFrame(t, d)
	doStep(t, notAdmin, "wait for the page", chromedp.WaitVisible(chromedp.CSS("#not-admin")))
	assert.Empty(t, textsOf(t, notAdmin, "look for the history", "#history, #rebind"))
	requireNoProblems(t, b)
}

// TestBrowserUIErrorBanners shows each upstream failure as the user sees
// it: the explanation, the Bitrix24 code, and "Try again" only where
// trying again can help. Nothing changes on the portal.
func TestBrowserUIErrorBanners(t *testing.T) {
	d, portal := startDemoPortal(t)
	b := newBrowser(t, thirdPartyCookiesBlocked)
	installApp(t, b, d)
	cases := []struct {
		name  string
		user  int
		fault *simulator.Fault
		text  string
		code  string
		retry bool
	}{
		{"ACCESS_DENIED", simulator.SeedViewer, nil, "You do not have permission to change this lead.", "ACCESS_DENIED", false},
		{"NOT_FOUND", simulator.SeedSales, &simulator.Fault{Method: "crm.lead.contact.items.delete", Status: 400, Code: "NOT_FOUND", Description: "Not found."},
			"This lead no longer exists or was merged into another.", "NOT_FOUND", false},
		{"QUERY_LIMIT_EXCEEDED", simulator.SeedSales, &simulator.Fault{Method: "crm.lead.contact.items.delete", Status: 503, Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"},
			"Bitrix24 is receiving too many requests from this account right now.", "QUERY_LIMIT_EXCEEDED", true},
		{"unreachable", simulator.SeedSales, &simulator.Fault{Method: "crm.lead.contact.items.delete", Status: 502, RawBody: "<html><body>502 Bad Gateway</body></html>"},
			"Bitrix24 did not answer in time.", "", true},
	}
	for _, c := range cases {
		frame := openTab(t, b, d, c.user, simulator.SeedLeadOneContact, "en")
		if c.fault != nil {
			portal.InjectFault(*c.fault)
		}
		doStep(t, frame, c.name+": click Remove all contacts", chromedp.Click(chromedp.CSS("#remove")))
		doStep(t, frame, c.name+": confirm", chromedp.Click(chromedp.CSS("#confirm-yes")))
		doStep(t, frame, c.name+": wait for the error banner", chromedp.WaitVisible(chromedp.CSS(".alert-danger")))
		alert := readStep(t, frame, c.name+": read the banner", chromedp.Text(chromedp.CSS(".alert-danger")))
		assert.Contains(t, alert, c.text, c.name)
		if c.code != "" {
			assert.Contains(t, alert, "Bitrix24 error code: "+c.code, c.name)
		}
		retry := textsOf(t, frame, c.name+": look for Try again", "#remove")
		assert.Equal(t, c.retry, len(retry) == 1 && retry[0] == "Try again", "%s: Try again offered: %v", c.name, retry)
		assert.Empty(t, textsOf(t, frame, c.name+": look for Undo", "#undo"))
		assert.Len(t, portal.LeadContacts(simulator.SeedLeadOneContact), 1, "%s: nothing changed", c.name)
		requireNoHorizontalScroll(t, b, frame, c.name)
		if c.name == "ACCESS_DENIED" {
			shot(t, b, frame, "error-en.png", "#tab-body")
		}
	}
	// The error pages answer 403, 404, 503 and 502 on purpose, and
	// Chromium logs each status for the frame's document.
	requireNoProblems(t, b, "the server responded with a status of")
}

// TestBrowserUILanguages runs the tab in Russian and Arabic (right to
// left) at 1280 and 400 px: plural forms, mirrored layout, no sideways
// scroll, no axe violation; and takes the screenshots of every state in
// English, Russian and Arabic.
func TestBrowserUILanguages(t *testing.T) {
	d, _, b, axe := installedUI(t)

	type lang struct {
		code, dir, count, question string
	}
	for _, l := range []lang{
		{"ru", "rtl" /* replaced below */, "6 связанных контактов", "Отвязать 6 контактов от этого лида? Сами контакты останутся в CRM."},
		{"ar", "rtl", "6 جهات اتصال مرتبطة", "هل تريد فصل 6 جهات اتصال عن هذا العميل المحتمل؟"},
	} {
		if l.code == "ru" {
			l.dir = "ltr"
		}
		frame := openTab(t, b, d, simulator.SeedAdmin, simulator.SeedLeadSixContacts, l.code)
		requireBudget(t, frame, d)
		attrs := readStep(t, frame, l.code+": read lang and dir", chromedp.Evaluate[[]string](
			`[document.documentElement.lang, document.documentElement.dir]`))
		assert.Equal(t, []string{l.code, l.dir}, attrs)
		assert.Equal(t, l.count, strings.TrimSpace(readStep(t, frame, l.code+": read the count", chromedp.Text(chromedp.CSS("#count")))))
		if l.dir == "rtl" {
			// Logical properties mirror the rows: the avatar sits right
			// of the name.
			mirrored := readStep(t, frame, "compare positions", chromedp.Evaluate[bool](
				`document.querySelector(".avatar").getBoundingClientRect().left > document.querySelector(".contact-link").getBoundingClientRect().left`))
			assert.True(t, mirrored, "ar: the list is mirrored")
		}
		requireNoHorizontalScroll(t, b, frame, l.code+" at 1280 px")
		requireAxeClean(t, frame, axe, l.code+" tab")
		shot(t, b, frame, "tab-"+l.code+".png", "#tab-body")
		doStep(t, frame, l.code+": click the danger button", chromedp.Click(chromedp.CSS("#remove")))
		doStep(t, frame, l.code+": wait for the confirmation", chromedp.WaitVisible(chromedp.CSS("#confirm")))
		assert.Contains(t, readStep(t, frame, l.code+": read the question", chromedp.Text(chromedp.CSS("#confirm-text"))), l.question)
		shot(t, b, frame, "confirm-"+l.code+".png", "#tab-body")
		doStep(t, frame, l.code+": confirm", chromedp.Click(chromedp.CSS("#confirm-yes")))
		doStep(t, frame, l.code+": wait for Undo", chromedp.WaitVisible(chromedp.CSS("#undo")))
		waitFitted(t, b)
		requireAxeClean(t, frame, axe, l.code+" success")
		shot(t, b, frame, "success-"+l.code+".png", "#tab-body")
		doStep(t, frame, l.code+": undo", chromedp.Click(chromedp.CSS("#undo")))
		doStep(t, frame, l.code+": wait for the list", chromedp.WaitVisible(chromedp.CSS("#contacts")))

		frame = openTab(t, b, d, simulator.SeedViewer, simulator.SeedLeadOneContact, l.code)
		doStep(t, frame, l.code+": remove as a read-only user",
			chromedp.Click(chromedp.CSS("#remove")), chromedp.Click(chromedp.CSS("#confirm-yes")),
			chromedp.WaitVisible(chromedp.CSS(".alert-danger")))
		waitFitted(t, b)
		requireAxeClean(t, frame, axe, l.code+" error")
		shot(t, b, frame, "error-"+l.code+".png", "#tab-body")
	}
	requireNoProblems(t, b, "the server responded with a status of 403 (Forbidden) ["+d.app+"/")
}

// TestBrowserUIEmptyAndNarrow: the empty state in English, Russian and
// Arabic, and the tab at 400 px (a phone, or the card's narrow column).
func TestBrowserUIEmptyAndNarrow(t *testing.T) {
	d, _, b, axe := installedUI(t)
	for _, code := range []string{"en", "ru", "ar"} {
		frame := openTab(t, b, d, simulator.SeedSales, simulator.SeedLeadNoContacts, code)
		doStep(t, frame, code+": wait for the empty state", chromedp.WaitVisible(chromedp.CSS("#empty")))
		disabled := readStep(t, frame, code+": read the danger button", chromedp.Evaluate[bool](`document.getElementById("remove").disabled`))
		assert.True(t, disabled, "nothing to unlink: the button is disabled")
		requireAxeClean(t, frame, axe, code+" empty state")
		shot(t, b, frame, "empty-"+code+".png", "#tab-body")
	}

	doStep(t, b.ctx, "narrow the window", chromedp.EmulateViewport(400, 800))
	for _, code := range []string{"en", "ar"} {
		frame := openTab(t, b, d, simulator.SeedAdmin, simulator.SeedLeadSixContacts, code)
		requireNoHorizontalScroll(t, b, frame, code+" at 400 px")
		doStep(t, frame, code+": open the confirmation at 400 px", chromedp.Click(chromedp.CSS("#remove")),
			chromedp.WaitVisible(chromedp.CSS("#confirm")))
		requireNoHorizontalScroll(t, b, frame, code+" confirmation at 400 px")
		requireAxeClean(t, frame, axe, code+" at 400 px")
	}
	requireNoProblems(t, b, "the server responded with a status of 403 (Forbidden) ["+d.app+"/")
}

// requireBudget checks, in the browser, that the tab's page asks nothing
// of anybody but the app and the BX24 library (B24_JS_URL), and that what
// it loads from the app (the document, CSS and JS, as decoded) stays
// under the 40 KB budget. The frame is attached after its first requests,
// so the page's own Resource Timing entries are read, not the recorder's.
func requireBudget(t *testing.T, frame context.Context, d *runningDemo) {
	t.Helper()
	type entry struct {
		Name string  `json:"name"`
		Size float64 `json:"size"`
	}
	entries := readStep(t, frame, "read the resource timing", chromedp.Evaluate[[]entry](
		`performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"))
			.map(e => ({name: e.name, size: e.decodedBodySize}))`))
	require.GreaterOrEqual(t, len(entries), 4, "document, CSS, BX24 library, JS: %v", entries)
	own := 0.0
	for _, e := range entries {
		u, err := url.Parse(e.Name)
		require.NoError(t, err)
		switch {
		case u.Scheme+"://"+u.Host == d.app:
			own += e.Size
		case hostOf(e.Name) == "127.0.0.1" && u.Path == "/api/v1/":
			// B24_JS_URL, outside the budget.
		default:
			t.Errorf("the tab requested %s", e.Name)
		}
	}
	t.Logf("tab page weight in the browser: %.0f bytes (HTML + CSS + JS, decoded)", own)
	assert.Less(t, own, float64(pageBudget), "the tab page must stay under 40 KB")
}

// pageBudget is issue 5's limit for the tab page: HTML + CSS + JS,
// uncompressed, without the BX24 library.
const pageBudget = 40 << 10
