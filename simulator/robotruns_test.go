package simulator

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRobotFiresOnStageChange: a robot put on a stage is posted to its
// handler when crm.lead.update moves a lead there, with the recorded
// payload and a token of the run-as user, whose rights then apply.
func TestRobotFiresOnStageChange(t *testing.T) {
	ra := newRobotApp(t)
	ra.mustAddRobot(t, "cleanup_contacts")
	require.NoError(t, ra.p.AddAutomationWith(Automation{Stage: "IN_PROCESS", Code: "cleanup_contacts", RunAs: SeedSales, Properties: map[string]string{"mode": "primary"}}))
	require.Error(t, ra.p.AddAutomation("NOPE", "cleanup_contacts", 0))
	require.Error(t, ra.p.AddAutomation("NEW", "unknown", 0))

	before := time.Now().Unix()
	r := callJSON(t, ra.p, "crm.lead.update", ra.admin, map[string]any{"id": SeedLeadThreeContacts, "fields": map[string]any{"STATUS_ID": "IN_PROCESS"}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	ra.p.WaitRobots()
	got := ra.received()
	require.Len(t, got, 1)
	form := got[0]

	f := mustRecording(t, "robot_handler_lead")
	sameFields(t, f, url.Values{}, form)
	assert.NotContains(t, form, "auth[refresh_token]", "robots get no refresh token (sendRefreshToken=false)")
	for k, v := range map[string]string{
		"code": "cleanup_contacts", "document_id[0]": "crm", "document_id[1]": "CCrmDocumentLead", "document_id[2]": "LEAD_1",
		"document_type[0]": "crm", "document_type[1]": "CCrmDocumentLead", "document_type[2]": "LEAD",
		"properties[mode]": "primary", "use_subscription": "Y", "timeout_duration": "0", "auth[expires_in]": "3600",
		"auth[user_id]": strconv.Itoa(SeedSales), "auth[domain]": ra.p.Domain(), "auth[client_endpoint]": ra.p.RESTEndpoint(),
		"auth[member_id]": ra.p.MemberID(), "auth[application_token]": ra.p.ApplicationToken(), "auth[scope]": "crm,placement,bizproc",
		"auth[server_endpoint]": ra.s.OAuthURL() + "/rest/", "auth[status]": "F",
	} {
		assert.Equal(t, v, form.Get(k), k)
	}
	ts, err := strconv.ParseInt(form.Get("ts"), 10, 64)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, ts, before)
	exp, err := strconv.ParseInt(form.Get("auth[expires]"), 10, 64)
	require.NoError(t, err)
	assert.Equal(t, ts+3600, exp)
	assert.Len(t, strings.Split(form.Get("event_token"), "|"), 3, "workflow|activity|event, as in the docs' example")
	assert.True(t, strings.HasPrefix(form.Get("event_token"), form.Get("workflow_id")+"|"))

	// The token is Bob's: his rights apply. Carol (read only) cannot unlink.
	token := form.Get("auth[access_token]")
	r = callJSON(t, ra.p, "profile", token, nil)
	assert.Equal(t, strconv.Itoa(SeedSales), r.Body["result"].(map[string]any)["ID"])
	r = callJSON(t, ra.p, "crm.lead.contact.items.delete", token, map[string]any{"id": SeedLeadThreeContacts})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Empty(t, ra.p.LeadContacts(SeedLeadThreeContacts))

	runs := ra.p.RobotRuns()
	require.Len(t, runs, 1)
	run := runs[0]
	assert.Equal(t, http.StatusOK, run.Status)
	assert.Equal(t, SeedLeadThreeContacts, run.LeadID)
	assert.Equal(t, "IN_PROCESS", run.Stage)
	assert.Equal(t, SeedSales, run.UserID)
	assert.False(t, run.Completed, "a waiting robot waits for bizproc.event.send")
	assert.NotContains(t, run.Payload.Get("auth[access_token]"), token[4:], "the record keeps no token")
	assert.NotContains(t, run.Payload.Get("event_token"), form.Get("event_token")[20:])

	// Moving to a stage without robots, or within the same stage, runs nothing.
	r = callJSON(t, ra.p, "crm.lead.update", ra.admin, map[string]any{"id": SeedLeadThreeContacts, "fields": map[string]any{"STATUS_ID": "IN_PROCESS", "TITLE": "x"}})
	require.Equal(t, http.StatusOK, r.Status)
	r = callJSON(t, ra.p, "crm.lead.update", ra.admin, map[string]any{"id": SeedLeadThreeContacts, "fields": map[string]any{"STATUS_ID": "PROCESSED"}})
	require.Equal(t, http.StatusOK, r.Status)
	ra.p.WaitRobots()
	assert.Len(t, ra.received(), 1)
}

func TestRobotRunsAsItsUserAndInBatch(t *testing.T) {
	ra := newRobotApp(t)
	ra.mustAddRobot(t, "as_viewer")
	r := callJSON(t, ra.p, "bizproc.robot.update", ra.admin, map[string]any{"CODE": "as_viewer", "FIELDS": map[string]any{"AUTH_USER_ID": SeedViewer}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	require.NoError(t, ra.p.AddAutomation("JUNK", "as_viewer", 0))

	r = callJSON(t, ra.p, "batch", ra.admin, map[string]any{"cmd": map[string]string{"move": "crm.lead.update?id=4&fields[STATUS_ID]=JUNK"}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	ra.p.WaitRobots()
	got := ra.received()
	require.Len(t, got, 1)
	assert.Equal(t, strconv.Itoa(SeedViewer), got[0].Get("auth[user_id]"), "AUTH_USER_ID when the designer names nobody")
	r = callJSON(t, ra.p, "crm.lead.contact.items.delete", got[0].Get("auth[access_token]"), map[string]any{"id": SeedLeadSixContacts})
	assert.Equal(t, http.StatusForbidden, r.Status, "Carol may only read")
	assert.Equal(t, "ACCESS_DENIED", r.errCode())
	assert.Len(t, ra.p.LeadContacts(SeedLeadSixContacts), 6)
}

// TestEventSendOncePerToken: bizproc.event.send completes a waiting run
// with its return values and log message; the token then stops working.
func TestEventSendOncePerToken(t *testing.T) {
	ra := newRobotApp(t)
	ra.mustAddRobot(t, "cleanup_contacts")
	require.NoError(t, ra.p.AddAutomation("CONVERTED", "cleanup_contacts", 0))
	runs, err := ra.p.MoveLead(context.Background(), SeedSales, SeedLeadOneContact, "CONVERTED")
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, http.StatusOK, runs[0].Status, "MoveLead delivers before it returns")
	form := ra.received()[0]
	assert.Equal(t, strconv.Itoa(SeedAdmin), form.Get("auth[user_id]"))
	token := form.Get("auth[access_token]")
	send := map[string]any{"EVENT_TOKEN": form.Get("event_token"), "RETURN_VALUES": map[string]any{"REMOVED": "1", "other": "x"}, "LOG_MESSAGE": "Unlinked 1 contact"}

	// Any user of the app may send; Carol's token works as well.
	r := callJSON(t, ra.p, "bizproc.event.send", ra.p.IssueTokens(SeedViewer).AccessToken, send)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, true, r.Body["result"])
	run := ra.p.RobotRuns()[0]
	assert.True(t, run.Completed)
	assert.Equal(t, map[string]string{"removed": "1"}, run.ReturnValues, "only RETURN_PROPERTIES, matched case-insensitively")
	assert.Equal(t, "Unlinked 1 contact", run.LogMessage)

	for _, tc := range []struct {
		name   string
		params map[string]any
	}{
		{"used token", send},
		{"unknown token", map[string]any{"EVENT_TOKEN": "1|2|3"}},
		{"no token", map[string]any{"LOG_MESSAGE": "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := callJSON(t, ra.p, "bizproc.event.send", token, tc.params)
			assert.Equal(t, http.StatusForbidden, r.Status, "%s", r.Raw)
			assert.Equal(t, "ACCESS_DENIED", r.errCode())
			assert.Equal(t, "Access denied!", r.errDesc())
		})
	}
	assert.Equal(t, "Unlinked 1 contact", ra.p.RobotRuns()[0].LogMessage, "a refused send changes nothing")
}

func TestRobotRunEdges(t *testing.T) {
	ra := newRobotApp(t)
	ra.mustAddRobot(t, "quick")
	r := callJSON(t, ra.p, "bizproc.robot.update", ra.admin, map[string]any{"CODE": "quick", "FIELDS": map[string]any{"USE_SUBSCRIPTION": "N"}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	require.NoError(t, ra.p.AddAutomation("PROCESSED", "quick", SeedSales))
	ra.mu.Lock()
	ra.reply = func(url.Values) int { return http.StatusInternalServerError }
	ra.mu.Unlock()

	runs, err := ra.p.MoveLead(context.Background(), SeedSales, SeedLeadNoContacts, "PROCESSED")
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, http.StatusInternalServerError, runs[0].Status, "no retries: the answer is recorded")
	assert.True(t, runs[0].Completed, "a robot that does not wait is done at once")
	assert.Equal(t, "N", ra.received()[0].Get("use_subscription"))
	r = callJSON(t, ra.p, "bizproc.event.send", ra.admin, map[string]any{"EVENT_TOKEN": ra.received()[0].Get("event_token")})
	assert.Equal(t, http.StatusForbidden, r.Status, "nothing waits for it")

	// A deleted robot stays on its stage, blocked; a read-only user cannot move.
	r = callJSON(t, ra.p, "bizproc.robot.delete", ra.admin, map[string]any{"CODE": "quick"})
	require.Equal(t, http.StatusOK, r.Status)
	runs, err = ra.p.MoveLead(context.Background(), SeedSales, SeedLeadOneContact, "PROCESSED")
	require.NoError(t, err)
	assert.Empty(t, runs)
	_, err = ra.p.MoveLead(context.Background(), SeedViewer, SeedLeadOneContact, "NEW")
	assert.Error(t, err)

	// Nothing runs on an unfinished install (an update drops the robots:
	// register it again while the installer runs).
	_, err = ra.p.BeginInstall(SeedAdmin)
	require.NoError(t, err)
	ra.mustAddRobot(t, "quick")
	runs, err = ra.p.MoveLead(context.Background(), SeedSales, SeedLeadThreeContacts, "PROCESSED")
	require.NoError(t, err)
	assert.Empty(t, runs)
	assert.Len(t, ra.received(), 1)
}
