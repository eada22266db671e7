package simulator

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Automation is a robot put on a lead stage in the automation designer.
// RunAs is the user whose token the handler gets ("Run as" in the
// designer); 0 keeps the robot's AUTH_USER_ID. Properties are the values
// the admin filled in; missing ones take the property's Default.
type Automation struct {
	Stage, Code string
	RunAs       int
	Properties  map[string]string
}

// RobotRun is one execution of a robot on a lead: what was delivered
// (tokens redacted) and, for a waiting robot, what bizproc.event.send
// returned.
type RobotRun struct {
	ID         int
	Time       time.Time // simulated clock
	Code       string
	LeadID     int
	Stage      string
	UserID     int    // whose token auth[access_token] is
	WorkflowID string // the run's workflow_id
	Waits      bool   // the robot waits for bizproc.event.send
	Status     int    // the handler's HTTP status, 0 before or on error
	Error      string // transport error, if any
	// Payload is the form posted, auth[access_token] and event_token cut
	// to their first four characters.
	Payload url.Values
	// Completed is set by bizproc.event.send (or at once for a robot that
	// does not wait); ReturnValues are the values it sent for the robot's
	// RETURN_PROPERTIES, LogMessage its LOG_MESSAGE.
	Completed    bool
	ReturnValues map[string]string
	LogMessage   string
}

// robotRun is a run's live state: RobotRun as shown (its Payload
// redacted), and the secrets only the delivery sees; eventToken is valid
// until the run completes.
type robotRun struct {
	RobotRun
	form       url.Values
	handler    string
	eventToken string
	returns    []string
}

// AddAutomation puts a registered robot on a lead stage, run as the given
// user (0: the robot's AUTH_USER_ID), with its properties' defaults.
func (p *Portal) AddAutomation(stage, code string, runAsUserID int) error {
	return p.AddAutomationWith(Automation{Stage: stage, Code: code, RunAs: runAsUserID})
}

// AddAutomationWith puts a robot on a stage with property values, as an
// admin does in the automation designer.
func (p *Portal) AddAutomationWith(a Automation) error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if !slices.Contains(leadStages, a.Stage) {
		return fmt.Errorf("simulator: no stage %q", a.Stage)
	}
	if !slices.ContainsFunc(p.robots, func(r Robot) bool { return r.Code == a.Code }) {
		return fmt.Errorf("simulator: no robot %q is registered", a.Code)
	}
	if _, ok := p.users[a.RunAs]; a.RunAs != 0 && !ok {
		return fmt.Errorf("simulator: no user %d", a.RunAs)
	}
	p.automations = append(p.automations, a)
	return nil
}

// Automations returns the robots put on stages.
func (p *Portal) Automations() []Automation {
	return locked(p.s, func() []Automation { return slices.Clone(p.automations) })
}

// startRobotsLocked creates the runs of the robots on the lead's new stage.
// Robots whose registration is gone are skipped (blocked), and nothing
// runs before the install is finished.
func (p *Portal) startRobotsLocked(rec *leadRec, byUserID int) []*robotRun {
	if p.state != installed {
		return nil
	}
	var runs []*robotRun
	for _, a := range p.automations {
		i := slices.IndexFunc(p.robots, func(r Robot) bool { return r.Code == a.Code })
		if a.Stage != rec.StatusID || i < 0 {
			continue
		}
		runs = append(runs, p.newRunLocked(p.robots[i], a, rec, byUserID))
	}
	return runs
}

// newRunLocked builds a run's payload as CBPRestActivity::Execute sends
// it (bizproc server source; field names as b24phpsdk's
// IncomingRobotRequest reads them): workflow_id, code, document_id,
// document_type, event_token, properties, use_subscription,
// timeout_duration, ts, and auth of the run-as user.
func (p *Portal) newRunLocked(r Robot, a Automation, rec *leadRec, byUserID int) *robotRun {
	// SILENT: which token a robot without AUTH_USER_ID and "Run as" gets
	// is undocumented; the user who moved the lead, as event.bind's
	// default (the user who triggered the event).
	userID := cmpOr(a.RunAs, r.AuthUserID, byUserID)
	now := p.s.nowLocked()
	// #nosec G404 -- ids shaped like PHP's uniqid(), not secrets.
	wf := fmt.Sprintf("%x%05x.%08d", now.Unix(), now.Nanosecond()/1000, rand.IntN(1e8))
	// The token is workflow|activity|event id, signed, as in the docs'
	// example ("55c1dc1c3f0d75.78875596|A51601_82584_96831_81132|…").
	// #nosec G404 -- the activity name is not a secret.
	activity := fmt.Sprintf("A%05d_%05d_%05d_%05d", rand.IntN(1e5), rand.IntN(1e5), rand.IntN(1e5), rand.IntN(1e5))
	token := wf + "|" + activity + "|" + randomHex(16) + "." + randomHex(32)
	tok := p.s.issueLocked(p, userID)
	f := url.Values{
		"workflow_id":      {wf},
		"code":             {r.Code},
		"document_id[0]":   {"crm"},
		"document_id[1]":   {"CCrmDocumentLead"},
		"document_id[2]":   {"LEAD_" + strconv.Itoa(rec.ID)},
		"document_type[0]": {"crm"},
		"document_type[1]": {"CCrmDocumentLead"},
		"document_type[2]": {"LEAD"},
		"event_token":      {token},
		"use_subscription": {yn(r.waits())},
		"timeout_duration": {"0"}, // no timeout set in the designer
		"ts":               {strconv.FormatInt(now.Unix(), 10)},
		// The auth of a robot: sendAuth true, sendRefreshToken false
		// (CBPRestActivity::Execute), so no refresh_token is sent.
		"auth[access_token]":      {tok.AccessToken},
		"auth[expires]":           {strconv.FormatInt(now.Add(accessTokenTTL).Unix(), 10)},
		"auth[expires_in]":        {strconv.Itoa(tok.ExpiresIn)},
		"auth[scope]":             {p.s.scopeString()},
		"auth[domain]":            {p.Domain()},
		"auth[server_endpoint]":   {p.s.serverEndpoint()},
		"auth[status]":            {p.s.app.Status},
		"auth[client_endpoint]":   {p.RESTEndpoint()},
		"auth[member_id]":         {p.memberID},
		"auth[user_id]":           {strconv.Itoa(userID)},
		"auth[application_token]": {p.appToken},
	}
	for _, k := range r.Properties {
		v, set := a.Properties[k]
		if !set {
			v = r.PropertyDefaults[k]
		}
		f.Set("properties["+k+"]", v)
	}
	p.nextRun++
	run := &robotRun{RobotRun: RobotRun{ID: p.nextRun, Time: now, Code: r.Code, LeadID: rec.ID, Stage: rec.StatusID,
		UserID: userID, WorkflowID: wf, Waits: r.waits(), Payload: redactRun(f), Completed: !r.waits()},
		form: f, handler: r.Handler, eventToken: token, returns: slices.Clone(r.ReturnProperties)}
	p.runs = append(p.runs, run)
	return run
}

func cmpOr(ids ...int) int {
	for _, id := range ids {
		if id != 0 {
			return id
		}
	}
	return 0
}

// deliverRunsAsync posts runs from goroutines, as the queue server does
// after the REST call has answered; WaitRobots waits for them.
func (p *Portal) deliverRunsAsync(runs []*robotRun) {
	for _, r := range runs {
		p.inflight.Add(1)
		go func() {
			defer p.inflight.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				select {
				case <-p.s.done:
					cancel()
				case <-ctx.Done():
				}
			}()
			p.deliverRun(ctx, r)
		}()
	}
}

// WaitRobots waits until every robot run started by a REST call has been
// delivered.
func (p *Portal) WaitRobots() { p.inflight.Wait() }

// deliverRun posts one run's form to the robot's handler, like an event
// (form-encoded, no redirects, no retries), and records the answer.
func (p *Portal) deliverRun(ctx context.Context, r *robotRun) {
	status, errText := 0, ""
	resp, err := p.post(ctx, r.handler, r.form) // both immutable after newRunLocked
	if err != nil {
		errText = err.Error()
	} else {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		status = resp.StatusCode
	}
	p.s.mu.Lock()
	r.Status, r.Error = status, errText
	p.s.mu.Unlock()
	p.s.log("portal %s: robot %s on lead %d delivered: status %d err %v", p.memberID, r.Code, r.LeadID, status, err)
}

// redactRun hides the run's secrets from what is kept and shown.
func redactRun(v url.Values) url.Values {
	out := cloneValues(v)
	for _, k := range []string{"auth[access_token]", "event_token"} {
		if s := out.Get(k); s != "" {
			out.Set(k, prefix4(s)+"…")
		}
	}
	return out
}

func (p *Portal) runSnapshot(r *robotRun) RobotRun {
	return locked(p.s, func() RobotRun { return p.snapshotLocked(r) })
}

func (p *Portal) snapshotLocked(r *robotRun) RobotRun {
	out := r.RobotRun
	out.Payload = cloneValues(r.Payload)
	if r.ReturnValues != nil {
		out.ReturnValues = make(map[string]string, len(r.ReturnValues))
		for k, v := range r.ReturnValues {
			out.ReturnValues[k] = v
		}
	}
	return out
}

// RobotRuns returns every robot run so far, oldest first.
func (p *Portal) RobotRuns() []RobotRun {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	out := make([]RobotRun, 0, len(p.runs))
	for _, r := range p.runs {
		out = append(out, p.snapshotLocked(r))
	}
	return out
}

// errEventToken is what bizproc.event.send answers for a token that is
// not valid and current (bizproc-event-send.md: 403 ACCESS_DENIED, the
// service's AccessException). A run that already completed no longer
// waits, so its token is refused too: a token works once.
func errEventToken() *apiError { return errAdminOnly() }

// mEventSend is bizproc.event.send: any user of the app may call it.
// RETURN_VALUES are kept for the robot's RETURN_PROPERTIES only, matched
// case-insensitively (CBPRestActivity::OnExternalEvent); LOG_MESSAGE
// goes to the robot's log, with the default text when empty.
func (p *Portal) mEventSend(c *callCtx) (result, *apiError) {
	token := c.str("EVENT_TOKEN")
	i := slices.IndexFunc(p.runs, func(r *robotRun) bool { return token != "" && r.eventToken == token })
	if i < 0 || p.runs[i].Completed {
		return result{}, errEventToken()
	}
	r := p.runs[i]
	r.ReturnValues = map[string]string{}
	if m, ok := c.param("RETURN_VALUES").(*omap); ok {
		for _, k := range m.keys {
			for _, name := range r.returns {
				if strings.EqualFold(k, name) {
					r.ReturnValues[name] = str(m.vals[k])
				}
			}
		}
	}
	r.LogMessage = c.str("LOG_MESSAGE")
	if r.LogMessage == "" {
		r.LogMessage = "Received response from the application."
	}
	r.Completed = true
	return okResult(true)
}
