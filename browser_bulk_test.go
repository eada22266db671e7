//go:build !race

// The browser tests run without the race detector: see browser_helpers_test.go.

package main

// Browser test of the admins' bulk run card: filter, count, start, the
// progress read from the store across reloads, pause and resume, the
// undo, in English, Russian and Arabic with axe-core on the card.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/simulator"
)

// bulkStage is the stage the test's filter picks: no seeded lead is in
// it, so only the leads SeedLeads adds match.
const bulkStage = "JUNK"

// openAdminPage opens the app from the portal's left menu as the
// administrator, in lang, and waits for the element sel. The portal serves
// that page only once the app is installed (before, it says "Application
// not available" and has no frame, which a wait for the frame would sit
// out to its timeout), and only an administrator gets the admins' page.
func openAdminPage(t *testing.T, b *browser, d *runningDemo, lang, sel string) context.Context {
	t.Helper()
	doStep(t, b.ctx, lang+": open the app from the left menu",
		chromedp.Navigate(fmt.Sprintf("%s/marketplace/app/?user=%d&lang=%s", d.portal, simulator.SeedAdmin, lang)),
		chromedp.WaitVisible(chromedp.CSS("#app-frame")))
	frame := b.appFrame(t, d)
	doStep(t, frame, lang+": wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	waitFitted(t, b)
	return frame
}

// submitBulk clicks a button of the bulk card and waits for the page the
// form POST brings: ready is a condition only the new page meets.
func submitBulk(t *testing.T, frame context.Context, what, button, ready string) {
	t.Helper()
	doStep(t, frame, what, chromedp.Click(chromedp.CSS(button)))
	_, err := runStep(t, frame, what+": wait for the page", chromedp.Poll[bool](
		`document.readyState === "complete" && (`+ready+`)`, chromedp.WithPollingInterval(20*time.Millisecond)))
	require.NoError(t, err)
}

// bulkFigure reads a number the card shows.
func bulkFigure(t *testing.T, frame context.Context, id string) int {
	t.Helper()
	s := readStep(t, frame, "read #"+id, chromedp.Evaluate[string](fmt.Sprintf(`document.getElementById(%q).textContent.trim()`, id)))
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "#%s shows %q", id, s)
	return n
}

// waitBulk waits until the poll has written a condition true.
func waitBulk(t *testing.T, frame context.Context, what, cond string) {
	t.Helper()
	_, err := runStep(t, frame, what, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond)))
	require.NoError(t, err)
}

// cardShot saves a PNG of the bulk card alone: its box in the frame,
// moved by the frame's place in the portal page.
func cardShot(t *testing.T, b *browser, frame context.Context, name string) {
	t.Helper()
	type box struct{ X, Y, W, H float64 }
	settle(t, b, frame)
	card := readStep(t, frame, "measure the card", chromedp.Evaluate[box](
		`(() => { const r = document.getElementById("bulk").getBoundingClientRect(); return {x: r.left, y: r.top, w: r.width, h: r.height} })()`))
	at := readStep(t, b.ctx, "measure the frame", chromedp.Evaluate[box](
		`(() => { const r = document.getElementById("app-frame").getBoundingClientRect();
			return {x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height} })()`))
	const pad = 8
	clip := &page.Viewport{X: at.X + card.X - pad, Y: at.Y + card.Y - pad, Width: card.W + 2*pad, Height: card.H + 2*pad, Scale: 1}
	beyond := true
	shot, err := chromedp.Call(b.ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{Clip: clip, CaptureBeyondViewport: &beyond})
	require.NoError(t, err, "take a screenshot of the card")
	png := shot.Data
	saveShot(t, name, png)
}

// leadsInStage returns the leads of the portal in stage with their links.
func leadsInStage(portal *simulator.Portal, ids []int, stage string) map[int][]simulator.LeadContact {
	out := map[int][]simulator.LeadContact{}
	for _, id := range ids {
		if l, ok := portal.Lead(id); ok && l.StatusID == stage {
			out[id] = portal.LeadContacts(id)
		}
	}
	return out
}

// TestBrowserBulk: an administrator picks a stage, counts, starts a run
// and watches its progress (read from the store: a reload mid-run shows
// it), pauses and resumes it, sees it done, undoes it and finds every
// link back as it was; axe-core finds nothing on the card in English,
// Russian and Arabic.
func TestBrowserBulk(t *testing.T) {
	d, portal, b, axe := installedUI(t)
	bundle, err := lang.Load()
	require.NoError(t, err)
	en := bundle.For("en")

	// Leads in the stage, each with contacts; every delete is held a
	// little, so the run takes a few batches of about a second each and
	// can be watched, reloaded and paused halfway.
	added := portal.SeedLeads(simulator.BulkOptions{Leads: 400, Seed: 14, WithContacts: 1})
	matched := leadsInStage(portal, added, bulkStage)
	others := map[int][]simulator.LeadContact{}
	for id := 1; id <= added[len(added)-1]; id++ {
		if _, ok := matched[id]; !ok {
			others[id] = portal.LeadContacts(id)
		}
	}
	links := 0
	for _, l := range matched {
		links += len(l)
	}
	require.Greater(t, len(matched), 2*25, "more leads than two batches (25 each), so the run can be caught halfway")
	portal.InjectFault(simulator.Fault{Method: "crm.lead.contact.items.delete", Delay: 30 * time.Millisecond, Times: 10 * len(matched)})

	frame := openAdminPage(t, b, d, "en", "#bulk-form")
	doStep(t, frame, "pick the stage", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#bulk-form input[name="stage"][value=%q]`, bulkStage))))
	submitBulk(t, frame, "click Count", "#bulk-count-button", `!!document.getElementById("bulk-count")`)
	assert.Equal(t, len(matched), bulkFigure(t, frame, "bulk-count-leads"), "the leads in the stage")
	assert.Equal(t, links, bulkFigure(t, frame, "bulk-count-links"), "their links")
	checked := readStep(t, frame, "read the filter", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('#bulk-form input[name="stage"]:checked'), e => e.value)`))
	assert.Equal(t, []string{bulkStage}, checked, "the page keeps the filter it counted")
	requireAxeClean(t, frame, axe, "en: counted")
	cardShot(t, b, frame, "bulk-en.png")

	// Start, and pause as soon as the first batch of deletes has reached
	// the portal: that batch ends, then nothing more is sent.
	submitBulk(t, frame, "click Start", "#bulk-start", `!!document.getElementById("bulk-run")`)
	assert.Equal(t, en.T("app.bulk_started"), strings.TrimSpace(readStep(t, frame, "read the banner", chromedp.TextContent(chromedp.CSS("#banner .alert-title")))))
	assert.Equal(t, len(matched), bulkFigure(t, frame, "bulk-matched"))
	require.Eventually(t, func() bool { return len(portal.CallsTo("crm.lead.contact.items.delete")) > 0 }, stepTimeout, 5*time.Millisecond,
		"the run's first deletes reach the portal")
	submitBulk(t, frame, "click Pause", "#bulk-pause", `!!document.getElementById("bulk-resume")`)
	assert.Equal(t, en.T("app.bulk_state_paused"), strings.TrimSpace(readStep(t, frame, "read the state", chromedp.TextContent(chromedp.CSS("#bulk-state")))))
	time.Sleep(1500 * time.Millisecond) // longer than a batch: the one in flight settles

	// A reload mid-run shows the run as the store has it.
	frame = openAdminPage(t, b, d, "en", "#bulk-resume")
	paused := bulkFigure(t, frame, "bulk-leads")
	assert.Positive(t, paused, "the reloaded page shows the progress so far")
	assert.Less(t, paused, len(matched), "the pause stopped the run before its end")
	assert.Equal(t, len(matched), bulkFigure(t, frame, "bulk-matched"))
	assert.Equal(t, float64(paused), readStep(t, frame, "read the bar", chromedp.Evaluate[float64](`document.getElementById("bulk-progress").value`)))
	deletes := len(portal.CallsTo("crm.lead.contact.items.delete"))
	requireAxeClean(t, frame, axe, "en: paused")
	assert.Equal(t, deletes, len(portal.CallsTo("crm.lead.contact.items.delete")), "a paused run sends nothing")

	// Resume: the poll moves the bar on from where the run stopped, to
	// the end.
	submitBulk(t, frame, "click Resume", "#bulk-resume", `!document.getElementById("bulk-resume")`)
	require.Equal(t, en.T("app.bulk_state_running"), strings.TrimSpace(readStep(t, frame, "read the state", chromedp.TextContent(chromedp.CSS("#bulk-state")))))
	waitBulk(t, frame, "wait for the bar to move",
		fmt.Sprintf(`Number(document.getElementById("bulk-progress").value) > %d && Number(document.getElementById("bulk-leads").textContent) > %d`, paused, paused))
	waitBulk(t, frame, "wait for the run to end",
		fmt.Sprintf(`document.getElementById("bulk-state").textContent.trim() === %q`, en.T("app.bulk_state_done")))
	assert.Equal(t, len(matched), bulkFigure(t, frame, "bulk-leads"))
	assert.Equal(t, links, bulkFigure(t, frame, "bulk-removed"))
	for id := range matched {
		require.Empty(t, portal.LeadContacts(id), "lead %d", id)
	}
	for id, l := range others {
		require.Equal(t, l, portal.LeadContacts(id), "lead %d is not in the stage and keeps its links", id)
	}

	// After the end, a reload shows the finished run, full bar and Undo.
	frame = openAdminPage(t, b, d, "en", "#bulk-form")
	doStep(t, frame, "wait for Undo", chromedp.WaitVisible(chromedp.CSS("#bulk-undo")))
	bar := readStep(t, frame, "read the bar", chromedp.Evaluate[[]float64](
		`[document.getElementById("bulk-progress").value, document.getElementById("bulk-progress").max]`))
	assert.Equal(t, []float64{float64(len(matched)), float64(len(matched))}, bar, "the bar is full")
	requireAxeClean(t, frame, axe, "en: done")

	// Undo the whole run: every link back, SORT and primary included.
	submitBulk(t, frame, "click Undo", "#bulk-undo", `!document.getElementById("bulk-undo")`)
	waitBulk(t, frame, "wait for the undo to end",
		fmt.Sprintf(`document.getElementById("bulk-state").textContent.trim() === %q`, en.T("app.bulk_state_undone")))
	assert.Equal(t, len(matched), bulkFigure(t, frame, "bulk-restored"))
	assert.Zero(t, bulkFigure(t, frame, "bulk-kept"))
	for id, l := range matched {
		require.Equal(t, l, portal.LeadContacts(id), "lead %d has its links back", id)
	}
	requireAxeClean(t, frame, axe, "en: undone")

	// Russian and Arabic: the card counted, checked and pictured.
	for _, code := range []string{"ru", "ar"} {
		frame := openAdminPage(t, b, d, code, "#bulk-form")
		attrs := readStep(t, frame, code+": read lang and dir", chromedp.Evaluate[[]string](
			`[document.documentElement.lang, document.documentElement.dir]`))
		assert.Equal(t, []string{code, bundle.For(code).Dir()}, attrs)
		heading := strings.TrimSpace(readStep(t, frame, code+": read the heading", chromedp.TextContent(chromedp.CSS("#bulk-heading"))))
		assert.Equal(t, bundle.For(code).T("app.bulk_heading"), heading)
		// The card keeps the last run's filter; the stage is set either way.
		doStep(t, frame, code+": pick the stage", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
			`document.querySelector('#bulk-form input[name="stage"][value=%q]').checked = true`, bulkStage)))
		submitBulk(t, frame, code+": click Count", "#bulk-count-button", `!!document.getElementById("bulk-count")`)
		assert.Equal(t, len(matched), bulkFigure(t, frame, "bulk-count-leads"), code)
		requireNoHorizontalScroll(t, b, frame, code+" bulk card")
		requireAxeClean(t, frame, axe, code+": bulk card")
		cardShot(t, b, frame, "bulk-"+code+".png")
	}
	requireNoProblems(t, b)
}
