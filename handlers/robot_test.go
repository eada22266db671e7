package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
)

// robotCode and robotPath are the automation rule's code and handler path
// in app.json.
const (
	robotCode = "leadcontacts_remove_all"
	robotPath = "/robots/remove-contacts"
)

// moveLead moves a lead to a stage as a user does in the lead card, and
// returns the runs of the rules on that stage, delivered and answered.
func (e *testEnv) moveLead(userID, lead int, stage string) []simulator.RobotRun {
	e.t.Helper()
	runs, err := e.portal.MoveLead(context.Background(), userID, lead, stage)
	require.NoError(e.t, err)
	return runs
}

// lastHistory is the newest history entry of the test portal.
func (e *testEnv) lastHistory() store.HistoryEntry {
	e.t.Helper()
	h, err := e.st.History(context.Background(), e.portal.MemberID(), 1)
	require.NoError(e.t, err)
	require.Len(e.t, h, 1)
	return h[0]
}

// TestRobotRegisteredAtInstall: the install registers the rule, named in
// all 19 languages, for leads, waiting for its answer, with the outcome
// and the count as return values and no default user (so a rule never
// runs with the installing admin's rights unasked); the report says so,
// and a reinstall (which drops an app's robots, as an update does)
// registers it again, once.
func TestRobotRegisteredAtInstall(t *testing.T) {
	e := newTestEnv(t)
	report := e.install()
	assert.Contains(t, report.doc.Find("#setup").Text()+report.body, "Automation rule “Remove all contacts”")

	robots := e.portal.Robots()
	require.Len(t, robots, 1)
	r := robots[0]
	assert.Equal(t, robotCode, r.Code)
	assert.Equal(t, e.base+robotPath, r.Handler)
	assert.Equal(t, "Y", r.UseSubscription)
	assert.Zero(t, r.AuthUserID, "no default user: the rule runs as the user its designer names")
	assert.Len(t, r.Name, 19)
	assert.Equal(t, "Remove all contacts", r.Name["en"])
	assert.Equal(t, "Отвязать все контакты", r.Name["ru"])
	// The designer lists them in the order of the registration's form
	// keys, which the client encodes sorted.
	assert.ElementsMatch(t, []string{"outcome", "count"}, r.ReturnProperties)

	e.install()
	robots = e.portal.Robots()
	require.Len(t, robots, 1, "a reinstall registers the rule again, once")
	assert.Equal(t, e.base+robotPath, robots[0].Handler)
}

// TestRobotRemovesContactsOnStageChange: a rule on the Junk stage, run as
// the salesperson, fires when the lead becomes Junk: the lead's contacts
// are unlinked with that user's token (the delete is the user's), the rule
// gets the outcome and the count through bizproc.event.send with a log
// line in the portal's language, and the admins' history says "by
// automation".
func TestRobotRemovesContactsOnStageChange(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	before := e.portal.LeadContacts(lead)
	require.NoError(t, e.portal.AddAutomation("JUNK", robotCode, simulator.SeedSales))

	runs := e.moveLead(simulator.SeedAdmin, lead, "JUNK")
	require.Len(t, runs, 1)
	run := runs[0]
	assert.Equal(t, http.StatusOK, run.Status, run.Error)
	assert.True(t, run.Completed, "the rule got its answer")
	assert.Equal(t, map[string]string{"outcome": "removed", "count": "3"}, run.ReturnValues)
	assert.Equal(t, "Contacts unlinked from the lead: 3. The contacts themselves stay in the CRM.", run.LogMessage)
	assert.Empty(t, e.portal.LeadContacts(lead))

	deletes := e.portal.CallsTo("crm.lead.contact.items.delete")
	require.Len(t, deletes, 1)
	assert.Equal(t, simulator.SeedSales, deletes[0].UserID, "removed with the rule's user's token")
	sends := e.portal.CallsTo("bizproc.event.send")
	require.Len(t, sends, 1)
	assert.Equal(t, simulator.SeedSales, sends[0].UserID)

	h := e.lastHistory()
	assert.Equal(t, store.ViaAutomation, h.Via)
	assert.Equal(t, store.ActionRemove, h.Action)
	assert.Equal(t, store.OutcomeOK, h.Outcome)
	assert.Equal(t, int64(simulator.SeedSales), h.UserID)
	assert.Equal(t, int64(lead), h.LeadID)
	assert.Len(t, h.ContactIDs, len(before))
	assert.Len(t, h.ContactNames, len(before), "the history names the contacts")
	assert.NotEmpty(t, h.UserName)
	assert.NotEmpty(t, h.LeadTitle)

	// The lead comes back to Junk with nothing linked: said so, count 0.
	e.moveLead(simulator.SeedAdmin, lead, "IN_PROCESS")
	again := e.moveLead(simulator.SeedAdmin, lead, "JUNK")
	require.Len(t, again, 1)
	assert.Equal(t, map[string]string{"outcome": "nothing", "count": "0"}, again[0].ReturnValues)
	assert.Equal(t, "No contacts were linked to the lead: there was nothing to unlink.", again[0].LogMessage)
}

// TestRobotRunAsViewerIsRefused: a rule run as a user who may only read
// leads is refused by Bitrix24; the refusal reaches the rule (outcome
// denied, with what to change) and the history, the contacts stay, and
// the delete is never tried twice.
func TestRobotRunAsViewerIsRefused(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	require.NoError(t, e.portal.AddAutomation("JUNK", robotCode, simulator.SeedViewer))

	runs := e.moveLead(simulator.SeedSales, lead, "JUNK")
	require.Len(t, runs, 1)
	run := runs[0]
	assert.Equal(t, http.StatusOK, run.Status)
	assert.True(t, run.Completed)
	assert.Equal(t, map[string]string{"outcome": "denied", "count": "0"}, run.ReturnValues)
	assert.Contains(t, run.LogMessage, "ACCESS_DENIED")
	assert.Contains(t, run.LogMessage, "“Run as”")
	assert.Len(t, e.portal.LeadContacts(lead), 3, "nothing unlinked")
	assert.Len(t, e.portal.CallsTo("crm.lead.contact.items.delete"), 1, "a refusal is never retried")

	h := e.lastHistory()
	assert.Equal(t, store.ViaAutomation, h.Via)
	assert.Equal(t, store.OutcomeError, h.Outcome)
	assert.Equal(t, "ACCESS_DENIED", h.ErrorCode)
	assert.Equal(t, int64(simulator.SeedViewer), h.UserID)
}

// TestRobotLogSpeaksThePortalsLanguage: the rule's log line is in the
// language the portal installed the app in.
func TestRobotLogSpeaksThePortalsLanguage(t *testing.T) {
	e := newTestEnv(t)
	f, err := e.portal.BeginInstall(simulator.SeedAdmin)
	require.NoError(t, err)
	setQuery(t, &f, "LANG", "ru")
	require.Equal(t, http.StatusOK, e.postFrame(f).status)
	e.portal.FinishInstall()
	lead := e.leadWithContacts(3)
	require.NoError(t, e.portal.AddAutomation("JUNK", robotCode, simulator.SeedSales))
	runs := e.moveLead(simulator.SeedSales, lead, "JUNK")
	require.Len(t, runs, 1)
	assert.Equal(t, "Отвязано контактов от лида: 3. Сами контакты остались в CRM.", runs[0].LogMessage)
}

// robotForm is a run's form as Bitrix24 posts it, for calls the tests
// forge: the application token comes from a real run's payload (it is in
// every frame, so anyone on the portal knows it).
func robotForm(appToken, accessToken string, userID, lead int, member string) url.Values {
	return url.Values{
		"workflow_id": {"67a2ffdb2c57a3.35276854"}, "code": {robotCode},
		"document_id[0]": {"crm"}, "document_id[1]": {"CCrmDocumentLead"}, "document_id[2]": {"LEAD_" + strconv.Itoa(lead)},
		"document_type[0]": {"crm"}, "document_type[1]": {"CCrmDocumentLead"}, "document_type[2]": {"LEAD"},
		"event_token":      {"67a2ffdb2c57a3.35276854|A51601_82584_96831_81132|forged.0000"},
		"use_subscription": {"Y"}, "timeout_duration": {"0"}, "ts": {"1738148752"},
		"auth[access_token]": {accessToken}, "auth[expires_in]": {"3600"}, "auth[member_id]": {member},
		"auth[user_id]": {strconv.Itoa(userID)}, "auth[application_token]": {appToken},
	}
}

// TestRobotCallIsVerified: a call that is not a run of this app's rule on
// a lead is refused before anything changes: wrong application token,
// unknown portal, a document that is not a lead, another robot's code, a
// token that is not the user the call names.
func TestRobotCallIsVerified(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	require.NoError(t, e.portal.AddAutomation("JUNK", robotCode, simulator.SeedSales))
	other := e.leadWithContacts(1)
	runs := e.moveLead(simulator.SeedSales, other, "JUNK")
	require.Len(t, runs, 1)
	appToken := runs[0].Payload.Get("auth[application_token]")
	require.NotEmpty(t, appToken)
	viewer := e.portal.IssueTokens(simulator.SeedViewer)
	sales := e.portal.IssueTokens(simulator.SeedSales)
	e.remember(viewer.AccessToken, viewer.RefreshToken, sales.AccessToken, sales.RefreshToken, appToken)
	member := e.portal.MemberID()

	for name, c := range map[string]struct {
		form   func(url.Values)
		status int
	}{
		"wrong application token": {func(f url.Values) { f.Set("auth[application_token]", "0123456789abcdef0123456789abcdef") }, http.StatusForbidden},
		"unknown portal":          {func(f url.Values) { f.Set("auth[member_id]", "0123456789abcdef0123456789abcdef") }, http.StatusForbidden},
		"not a lead":              {func(f url.Values) { f.Set("document_id[1]", "CCrmDocumentDeal"); f.Set("document_id[2]", "DEAL_5") }, http.StatusBadRequest},
		"another robot":           {func(f url.Values) { f.Set("code", "someone_else") }, http.StatusBadRequest},
		"token of another user":   {func(f url.Values) { f.Set("auth[access_token]", viewer.AccessToken) }, http.StatusForbidden},
		"no event token":          {func(f url.Values) { f.Del("event_token") }, http.StatusBadRequest},
	} {
		mark := len(e.portal.CallsTo("crm.lead.contact.items.delete"))
		form := robotForm(appToken, sales.AccessToken, simulator.SeedSales, lead, member)
		c.form(form)
		p := e.postForm(e.base+robotPath, form)
		assert.Equal(t, c.status, p.status, "%s: %s", name, p.body)
		assert.Len(t, e.portal.CallsTo("crm.lead.contact.items.delete"), mark, "%s: nothing deleted", name)
		assert.Len(t, e.portal.LeadContacts(lead), 3, name)
	}

	// The same form, genuine, does the work.
	p := e.postForm(e.base+robotPath, robotForm(appToken, sales.AccessToken, simulator.SeedSales, lead, member))
	assert.Equal(t, http.StatusOK, p.status, p.body)
	assert.Empty(t, e.portal.LeadContacts(lead))

	// A GET (the vendor console's check) gets the landing page.
	assert.Equal(t, http.StatusOK, e.do(http.MethodGet, e.base+robotPath, nil).status)
}

// TestRobotWithoutUserTokenSaysWhatToSet: a run that carries no user token
// (no "Run as" and no default) changes nothing and tells the rule, with
// the installer's token, which setting to fill in.
func TestRobotWithoutUserTokenSaysWhatToSet(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	require.NoError(t, e.portal.AddAutomation("JUNK", robotCode, simulator.SeedSales))
	runs := e.moveLead(simulator.SeedSales, e.leadWithContacts(1), "JUNK")
	appToken := runs[0].Payload.Get("auth[application_token]")
	e.remember(appToken)

	form := robotForm(appToken, "", 0, lead, e.portal.MemberID())
	form.Del("auth[user_id]")
	p := e.postForm(e.base+robotPath, form)
	assert.Equal(t, http.StatusOK, p.status, p.body)
	assert.Len(t, e.portal.LeadContacts(lead), 3)
	sends := e.portal.CallsTo("bizproc.event.send")
	last := sends[len(sends)-1]
	assert.Equal(t, simulator.SeedAdmin, last.UserID, "reported with the installer's token")
	assert.Contains(t, last.Params.Get("LOG_MESSAGE"), "“Run as”")
	assert.Equal(t, "no_user", last.Params.Get("RETURN_VALUES[outcome]"))
}

// TestAdminPageShowsTheRuleAndRebindBringsItBack: the admins' page lists
// the automation rule with the placements; after an update (which drops
// an app's robots) it shows it unbound, and the re-bind registers it
// again. A portal that did not grant bizproc shows it as not available,
// and its install still succeeds.
func TestAdminPageShowsTheRuleAndRebindBringsItBack(t *testing.T) {
	e := newInstalledEnv(t)
	row := func(p page) string {
		return strings.Join(strings.Fields(p.doc.Find(`#placements li[data-placement="`+robotCode+`"]`).Text()), " ")
	}
	admin := e.openApp(simulator.SeedAdmin, "en")
	require.Equal(t, http.StatusOK, admin.status, admin.body)
	assert.Equal(t, "Automation rule “Remove all contacts” leadcontacts_remove_all bound", row(admin))
	assert.Equal(t, "Where the app appears in Bitrix24", strings.TrimSpace(admin.doc.Find("#placements-heading").Text()))
	assert.Contains(t, admin.doc.Find("p.count").First().Text(), "where the app appears, bulk runs")

	// As after an update, which drops an app's robots, when the admin
	// closed the installer: the rule is gone.
	tok := e.portal.IssueTokens(simulator.SeedAdmin)
	e.remember(tok.AccessToken, tok.RefreshToken)
	res, err := http.PostForm(e.portal.RESTEndpoint()+"bizproc.robot.delete.json", url.Values{"auth": {tok.AccessToken}, "CODE": {robotCode}})
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Empty(t, e.portal.Robots())
	admin = e.openApp(simulator.SeedAdmin, "en")
	assert.Equal(t, "Automation rule “Remove all contacts” leadcontacts_remove_all not bound", row(admin))

	done := e.submit(admin, "#rebind-form")
	require.Equal(t, http.StatusOK, done.status, done.body)
	require.Len(t, e.portal.Robots(), 1)
	assert.Equal(t, "Automation rule “Remove all contacts” leadcontacts_remove_all bound", row(done))
}

// TestInstallWithoutBizprocScopeSaysTheRuleIsUnavailable: bizproc is an
// optional scope; a portal that does not grant it gets the tab and the
// list menu, and the report and the admins' page say the rule is not
// available rather than failing.
func TestInstallWithoutBizprocScopeSaysTheRuleIsUnavailable(t *testing.T) {
	e := newTestEnv(t, withSim(func(o *simulator.Options) { o.App.Scope = []string{"crm", "placement", "user_brief"} }))
	report := e.install()
	assert.True(t, report.doc.Find("body").HasClass("install-finish"), "the install succeeds")
	assert.Contains(t, report.doc.Find("#setup li").Last().Text(), "Automation rule “Remove all contacts”")
	assert.Contains(t, report.doc.Find("#setup li").Last().Text(), "not available: the app has no Automation (bizproc) permission")
	assert.Empty(t, e.portal.Robots())
	assert.Len(t, e.portal.Placements(), 2)

	admin := e.openApp(simulator.SeedAdmin, "en")
	assert.Contains(t, admin.doc.Find(`#placements li[data-placement="`+robotCode+`"]`).Text(), "not available")
}

// TestQueuedRobotRunIsRetriedThenReported: with the job queue, a run is
// answered at once and queued sealed (no token in clear); an attempt that
// meets a failing portal asks for another and records nothing, the next one
// does the work and reports it; a run whose last attempt still fails tells
// the rule and the history; an unreadable job is dropped, not retried.
func TestQueuedRobotRunIsRetriedThenReported(t *testing.T) {
	q := &fakeQueue{}
	e := newInstalledEnv(t, func(e *testEnv) { e.robots = q })
	lead := e.leadWithContacts(3)
	require.NoError(t, e.portal.AddAutomation("JUNK", robotCode, simulator.SeedSales))
	mark := len(e.portal.Calls())
	runs := e.moveLead(simulator.SeedAdmin, lead, "JUNK")
	require.Len(t, runs, 1)
	assert.Equal(t, http.StatusOK, runs[0].Status)
	assert.False(t, runs[0].Completed, "queued: nothing done yet")
	assert.Len(t, e.portal.Calls(), mark, "queuing costs the portal nothing")
	sealed := q.takeRun(t)
	assert.NotContains(t, sealed, runs[0].Payload.Get("auth[application_token]"), "the job holds no token in clear")
	entries, err := e.st.History(context.Background(), e.portal.MemberID(), 10)
	require.NoError(t, err)
	historyBefore := len(entries)

	ctx := context.Background()
	// A 500 is not retried by the REST client (QUERY_LIMIT_EXCEEDED is,
	// within the call): the job's next attempt is the retry.
	e.portal.InjectFault(simulator.Fault{Method: "batch", Status: http.StatusInternalServerError, Code: "INTERNAL_SERVER_ERROR", Description: "Internal error"})
	assert.Error(t, e.h.WorkRobotRun(ctx, sealed, false), "a failing portal asks for another attempt")
	assert.Len(t, e.portal.LeadContacts(lead), 3)
	entries, err = e.st.History(ctx, e.portal.MemberID(), 10)
	require.NoError(t, err)
	assert.Len(t, entries, historyBefore, "nothing recorded for an attempt that will be repeated")
	assert.False(t, e.portal.RobotRuns()[0].Completed)

	require.NoError(t, e.h.WorkRobotRun(ctx, sealed, false))
	assert.Empty(t, e.portal.LeadContacts(lead))
	run := e.portal.RobotRuns()[0]
	assert.True(t, run.Completed)
	assert.Equal(t, map[string]string{"outcome": "removed", "count": "3"}, run.ReturnValues)

	// The last attempt reports what it meets.
	other := e.leadWithContacts(1)
	e.moveLead(simulator.SeedAdmin, other, "JUNK")
	sealed = q.takeRun(t)
	e.portal.InjectFault(simulator.Fault{Method: "batch", Status: http.StatusInternalServerError, Code: "INTERNAL_SERVER_ERROR", Description: "Internal error"})
	require.NoError(t, e.h.WorkRobotRun(ctx, sealed, true))
	last := e.portal.RobotRuns()[1]
	assert.True(t, last.Completed)
	assert.Equal(t, "failed", last.ReturnValues["outcome"])
	assert.Contains(t, last.LogMessage, "INTERNAL_SERVER_ERROR")
	assert.Len(t, e.portal.LeadContacts(other), 1)
	h := e.lastHistory()
	assert.Equal(t, store.ViaAutomation, h.Via)
	assert.Equal(t, store.OutcomeError, h.Outcome)

	assert.NoError(t, e.h.WorkRobotRun(ctx, "not a sealed run", false), "an unreadable job is dropped")
}
