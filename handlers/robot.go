package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// The automation rule "Remove all contacts" (app.json "robots"): an admin
// puts it on a lead stage in the automation designer, and Bitrix24's queue
// server posts to its handler whenever a lead reaches that stage, with the
// token of the user the rule runs as. The rule does what the tab's button
// does, with that user's rights, and answers through bizproc.event.send.

// robotCall is one run of the rule as CBPRestActivity::Execute posts it
// (testdata/recorded/robot_handler_lead.json): PHP-style keys, the lead as
// document_id[2] = "LEAD_<id>", an event_token to answer with, and the
// auth of the run-as user without a refresh token.
type robotCall struct {
	Code        string
	MemberID    string
	Domain      string
	AppToken    secret.String
	AccessToken secret.String // empty when Bitrix24 sent no user token
	UserID      int64
	LeadID      int64
	EventToken  secret.String
	// Waits is use_subscription: Bitrix24 waits for bizproc.event.send
	// ("by default the parameter is empty, which is equivalent to
	// waiting"; only N does not).
	Waits bool
}

var leadDocument = regexp.MustCompile(`^LEAD_([1-9][0-9]{0,17})$`)

// parseRobotCall reads and checks a run's form. A form that is not a run
// of a lead robot of this app is refused whole.
func parseRobotCall(form url.Values) (robotCall, error) {
	rc := robotCall{
		Code: form.Get("code"), MemberID: form.Get("auth[member_id]"), Domain: form.Get("auth[domain]"),
		AppToken: secret.New(form.Get("auth[application_token]")), EventToken: secret.New(form.Get("event_token")),
		Waits: form.Get("use_subscription") != "N",
	}
	if !isMemberID(rc.MemberID) {
		return rc, fmt.Errorf("%w: auth[member_id]", ErrBadFrame)
	}
	if form.Get("document_id[0]") != "crm" || form.Get("document_id[1]") != "CCrmDocumentLead" {
		return rc, fmt.Errorf("%w: document_id is not a CRM lead", ErrBadFrame)
	}
	m := leadDocument.FindStringSubmatch(form.Get("document_id[2]"))
	if m == nil {
		return rc, fmt.Errorf("%w: document_id[2]", ErrBadFrame)
	}
	rc.LeadID, _ = strconv.ParseInt(m[1], 10, 64) // 18 digits fit
	if rc.Waits && !isToken(rc.EventToken.Reveal()) {
		return rc, fmt.Errorf("%w: event_token", ErrBadFrame)
	}
	if tok := form.Get("auth[access_token]"); tok != "" {
		if !isToken(tok) {
			return rc, fmt.Errorf("%w: auth[access_token]", ErrBadFrame)
		}
		rc.AccessToken = secret.New(tok)
		uid, err := strconv.ParseInt(form.Get("auth[user_id]"), 10, 64)
		if err != nil || uid <= 0 {
			return rc, fmt.Errorf("%w: auth[user_id]", ErrBadFrame)
		}
		rc.UserID = uid
	}
	return rc, nil
}

// Outcomes the rule returns in its "outcome" value, for conditions later
// in the lead's automation ("if outcome is denied, notify the manager").
const (
	robotRemoved  = "removed"   // links were unlinked; count says how many (empty when unknown)
	robotNothing  = "nothing"   // no contact was linked
	robotDenied   = "denied"    // the run-as user may not change the lead
	robotLeadGone = "lead_gone" // the lead was deleted or merged
	robotNoUser   = "no_user"   // Bitrix24 sent no user token
	robotFailed   = "failed"    // Bitrix24 failed or did not answer; the links may remain
)

// robotOutcome is what the rule reports: the outcome, the count and the
// log line in the portal's language.
type robotOutcome struct {
	Outcome string
	Count   string
	Log     string
}

// RobotQueue enqueues a run of an automation rule, sealed (the job engine
// works it with WorkRobotRun).
type RobotQueue interface {
	EnqueueRobotRun(ctx context.Context, sealed string) error
}

// onRobot serves a run of robot rb. The post is checked against stored
// state only (the installed portal, the application token), which costs
// the portal nothing, and the run is queued: a stage change of hundreds
// of leads fires hundreds of runs at once, and each is worked in its turn
// within the portal's budget instead of timing out. Without a queue (or
// when it refuses) the run is worked at once.
func (h *Handlers) onRobot(rb manifest.Robot) func(*gin.Context) error {
	return func(c *gin.Context) error {
		rc, err := parseRobotCall(c.Request.PostForm)
		if err == nil && rc.Code != rb.Code {
			err = fmt.Errorf("%w: robot code %q on the handler of %q", ErrBadFrame, rc.Code, rb.Code)
		}
		if err != nil {
			return fail(http.StatusBadRequest, "error.bad_request", err)
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
		defer cancel()
		if _, err := h.appPortal(ctx, rc.MemberID, rc.AppToken); err != nil {
			return err
		}
		if h.d.Robots != nil {
			sealed, err := h.sealRun(rc)
			if err == nil {
				err = h.d.Robots.EnqueueRobotRun(ctx, sealed)
			}
			if err == nil {
				return nil
			}
			h.d.Logger.ErrorContext(ctx, "automation rule's run not queued; working it now", "member", rc.MemberID, "lead", rc.LeadID, "err", err)
		}
		// A stage change of many leads fires many runs: they wait behind
		// the requests kept for users' clicks, as tab views do.
		return h.runRobot(bitrix24.Deferrable(ctx), rc, true)
	}
}

// robotRunAAD binds a sealed run to its purpose.
const robotRunAAD = "robot-run"

// queuedRun is a run as the queue keeps it, sealed whole.
type queuedRun struct {
	Code, MemberID, Domain string
	Access, Event, App     string
	UserID, LeadID         int64
	Waits                  bool
}

func (h *Handlers) sealRun(rc robotCall) (string, error) {
	b, err := json.Marshal(queuedRun{Code: rc.Code, MemberID: rc.MemberID, Domain: rc.Domain,
		Access: rc.AccessToken.Reveal(), Event: rc.EventToken.Reveal(), App: rc.AppToken.Reveal(), UserID: rc.UserID, LeadID: rc.LeadID, Waits: rc.Waits})
	if err != nil {
		return "", err
	}
	return h.d.Keys.Seal(secret.New(string(b)), robotRunAAD), nil
}

// WorkRobotRun implements jobs.Robots: it works a queued run in the
// background's share of the portal's budget, so people's clicks and tab
// views never wait for a rule. An error asks for another attempt.
func (h *Handlers) WorkRobotRun(ctx context.Context, sealed string, last bool) error {
	plain, err := h.d.Keys.Open(sealed, robotRunAAD)
	if err != nil {
		// Sealed under a key this instance lacks: no attempt can help.
		h.d.Logger.ErrorContext(ctx, "queued automation rule's run cannot be opened; dropped", "err", err)
		return nil
	}
	var q queuedRun
	if err := json.Unmarshal([]byte(plain.Reveal()), &q); err != nil {
		h.d.Logger.ErrorContext(ctx, "queued automation rule's run unreadable; dropped", "err", err)
		return nil
	}
	rc := robotCall{Code: q.Code, MemberID: q.MemberID, Domain: q.Domain, AccessToken: secret.New(q.Access),
		EventToken: secret.New(q.Event), AppToken: secret.New(q.App), UserID: q.UserID, LeadID: q.LeadID, Waits: q.Waits}
	err = h.runRobot(bitrix24.Background(ctx), rc, last)
	if err != nil && asProblem(err).status < http.StatusInternalServerError {
		// Refused (a forged or stale run): logged, never tried again.
		h.d.Logger.WarnContext(ctx, "automation rule's run refused", "member", rc.MemberID, "lead", rc.LeadID, "err", err)
		return nil
	}
	return err
}

// runRobot works one run: verified like a frame (stored portal,
// application token, then the token itself in one batch: app.info names
// this app and profile the user auth[user_id] claims), the contacts
// removed with the run-as user's token exactly as the tab's button removes
// them, the history told "by automation", and the outcome sent back to
// the rule. A refusal (ACCESS_DENIED, a lead gone) is reported, never
// retried: the rule's log says what to change. A failure that another
// attempt may cure (the portal busy or unreachable) is returned unless
// last, with nothing recorded yet; the last attempt reports it.
func (h *Handlers) runRobot(ctx context.Context, rc robotCall, last bool) error {
	if rc.AccessToken.IsZero() {
		return h.robotWithoutUser(ctx, rc)
	}
	cmds := append([]bitrix24.Cmd{{Key: "app", Method: "app.info"}, {Key: "me", Method: "profile"}}, listCommands(rc.LeadID)...)
	p, res, me, err := h.verifyFrame(ctx, Frame{MemberID: rc.MemberID, Domain: rc.Domain, AuthID: rc.AccessToken, AppToken: rc.AppToken}, cmds)
	switch {
	case err != nil && asProblem(err).status < http.StatusInternalServerError:
		return err // refused: nothing vouches for the token, so nothing is said with it
	case err != nil && !last:
		return err // the portal did not answer: try again
	case err != nil:
		// The portal did not answer, attempt after attempt: the rule and
		// the history are told.
		p, perr := h.activePortal(ctx, rc.MemberID)
		if perr != nil {
			return perr
		}
		sess := &store.Session{MemberID: p.MemberID, UserID: rc.UserID, LeadID: rc.LeadID, Lang: p.Lang}
		h.recordRemoval(ctx, sess, store.ViaAutomation, removal{}, err)
		h.answerRobot(ctx, p, rc, robotResult(h.d.Lang.For(p.Lang), removal{}, err))
		return nil
	}
	if int64(me.ID) != rc.UserID {
		return fail(http.StatusForbidden, "error.not_from_bitrix", fmt.Errorf("robot token of user %d, call claims user %d", me.ID, rc.UserID))
	}
	loc := h.d.Lang.For(p.Lang)
	sess := &store.Session{MemberID: p.MemberID, UserID: rc.UserID, LeadID: rc.LeadID, Lang: p.Lang,
		UserName: profileName(res), ContactNames: contactNames(res), AccessToken: rc.AccessToken}
	var r removal
	if sess.LeadTitle, err = leadTitle(res); err == nil {
		r, err = h.removeOnce(ctx, sess, p)
	}
	if err != nil && retryable(err) && !last {
		h.d.Logger.InfoContext(ctx, "automation rule's run failed; trying again", "member", p.MemberID, "lead", rc.LeadID, "code", upstreamCode(err), "err", err)
		return err
	}
	h.recordRemoval(ctx, sess, store.ViaAutomation, r, err)
	out := robotResult(loc, r, err)
	h.d.Logger.InfoContext(ctx, "automation rule ran", "member", p.MemberID, "lead", rc.LeadID, "user", rc.UserID,
		"outcome", out.Outcome, "count", out.Count, "code", upstreamCode(err))
	h.answerRobot(ctx, p, rc, out)
	return nil
}

// robotResult turns a removal's result into the rule's outcome.
func robotResult(loc *lang.Localizer, r removal, err error) robotOutcome {
	switch {
	case err == nil && r.uncounted:
		return robotOutcome{Outcome: robotRemoved, Log: loc.T("robot.log_uncounted")}
	case err == nil && len(r.removed) == 0:
		return robotOutcome{Outcome: robotNothing, Count: "0", Log: loc.T("robot.log_nothing")}
	case err == nil:
		n := len(r.removed)
		return robotOutcome{Outcome: robotRemoved, Count: strconv.Itoa(n), Log: loc.T("robot.log_removed", "Number", n)}
	}
	code := upstreamCode(err)
	switch upstreamKey(err) {
	case "error.ACCESS_DENIED":
		return robotOutcome{Outcome: robotDenied, Count: "0", Log: loc.T("robot.log_denied", "Code", code)}
	case "error.NOT_FOUND":
		return robotOutcome{Outcome: robotLeadGone, Count: "0", Log: loc.T("robot.log_lead_gone", "Code", code)}
	}
	if code == "" {
		code = "—"
	}
	return robotOutcome{Outcome: robotFailed, Count: "0", Log: loc.T("robot.log_failed", "Reason", loc.T(upstreamKey(err)), "Code", code)}
}

// robotWithoutUser handles a run that carries no user token: nothing can
// be removed without one (the app never acts with the installer's rights
// on a user's behalf), and the rule is told how to fix it. Only the
// stored portal and the application token vouch for such a call, so it
// changes nothing but the rule's own log.
func (h *Handlers) robotWithoutUser(ctx context.Context, rc robotCall) error {
	p, err := h.appPortal(ctx, rc.MemberID, rc.AppToken)
	if err != nil {
		return err
	}
	loc := h.d.Lang.For(p.Lang)
	h.d.Logger.WarnContext(ctx, "automation rule ran without a user token", "member", p.MemberID, "lead", rc.LeadID)
	h.answerRobot(ctx, p, rc, robotOutcome{Outcome: robotNoUser, Count: "0", Log: loc.T("robot.log_no_user")})
	return nil
}

// answerRobot sends the outcome to a waiting rule with bizproc.event.send,
// which any user of the app may call: with the run's own token, or, when
// there is none or it no longer works, the installer's. A rule that does
// not wait gets nothing. A failure is logged: the rule then waits until
// its timeout, and the history already holds what happened.
func (h *Handlers) answerRobot(ctx context.Context, p *store.Portal, rc robotCall, out robotOutcome) {
	if !rc.Waits {
		return
	}
	params := map[string]any{
		"EVENT_TOKEN":   rc.EventToken.Reveal(),
		"RETURN_VALUES": map[string]any{"outcome": out.Outcome, "count": out.Count},
		"LOG_MESSAGE":   out.Log,
	}
	send := func(token secret.String) error {
		var ok bool
		return h.onPortal(ctx, p, func(endpoint string) error {
			return h.d.REST.Call(ctx, endpoint, token, "bizproc.event.send", params, &ok)
		})
	}
	var err error
	if !rc.AccessToken.IsZero() {
		err = send(rc.AccessToken)
	}
	if rc.AccessToken.IsZero() || bitrix24.IsAuthFailure(err) {
		err = send(p.AccessToken)
		if bitrix24.IsAuthFailure(err) {
			var fresh secret.String
			if fresh, err = h.renewInstallerToken(ctx, p); err == nil {
				err = send(fresh)
			}
		}
	}
	if err != nil {
		h.d.Logger.ErrorContext(ctx, "automation rule's outcome not delivered (bizproc.event.send failed)",
			"member", p.MemberID, "lead", rc.LeadID, "outcome", out.Outcome, "code", upstreamCode(err), "err", err)
	}
}

// The install's part: the robots app.json declares are registered with
// bizproc.robot.add, or brought up to date with bizproc.robot.update when
// bizproc.robot.list shows them already (a reinstall; Bitrix24 itself
// drops an app's robots on uninstall and on update, bizproc-robot-
// delete.md, so the installer that runs on an update registers them
// again). The robots are optional: without the bizproc scope, or on a
// plan without automation, the install goes on and says so.

// robotFields is bizproc.robot.add's description of a robot, less CODE:
// a waiting rule for leads only, with its return values. AUTH_USER_ID is
// left out on purpose: it would make the installing admin the default
// user of every rule, and so give admin rights to rules whose designer
// sets no "Run as". The docs do not say what Bitrix24 sends then; the
// handler acts only with a user token it is given, and otherwise tells the
// rule to set one (robot.log_no_user).
func robotFields(rb manifest.Robot, handler string) url.Values {
	f := url.Values{"HANDLER": {handler}, "USE_SUBSCRIPTION": {"Y"},
		"DOCUMENT_TYPE[0]": {"crm"}, "DOCUMENT_TYPE[1]": {"CCrmDocumentLead"}, "DOCUMENT_TYPE[2]": {"LEAD"},
		"FILTER[INCLUDE][0][0]": {"crm"}, "FILTER[INCLUDE][0][1]": {"CCrmDocumentLead"},
	}
	for code, s := range rb.Name {
		f.Set("NAME["+code+"]", s)
	}
	for code, s := range rb.Description {
		f.Set("DESCRIPTION["+code+"]", s)
	}
	for _, rp := range rb.ReturnProperties {
		k := "RETURN_PROPERTIES[" + rp.Code + "]"
		f.Set(k+"[Type]", rp.Type)
		for code, s := range rp.Name {
			f.Set(k+"[Name]["+code+"]", s)
		}
	}
	return f
}

// robotOps appends to ops the calls that register the manifest's robots
// and returns their lines of the install report, each with the key of
// its call (the report line changes when the call fails).
func (h *Handlers) robotOps(ops *[]bitrix24.Cmd, plan *setupPlan, loc *lang.Localizer) (items []setupItem, keys []string) {
	for _, rb := range h.cfg.Manifest.Robots {
		item := setupItem{Label: loc.T("install.robot", "Title", textIn(rb.Name, loc.Code()))}
		if plan.robotsErr != nil {
			item.Status = loc.T("install.status_unavailable")
			items, keys = append(items, item), append(keys, "")
			continue
		}
		fields := robotFields(rb, manifest.Absolute(h.cfg.BaseURL, rb.Handler))
		key := fmt.Sprintf("op%d", len(*ops))
		if slices.Contains(plan.robots, rb.Code) {
			q := url.Values{"CODE": {rb.Code}}
			for k, v := range fields {
				name, rest, _ := strings.Cut(k, "[")
				if rest != "" {
					rest = "[" + rest
				}
				q["FIELDS["+name+"]"+rest] = v
			}
			*ops = append(*ops, bitrix24.Cmd{Key: key, Method: "bizproc.robot.update", Params: q})
			item.Status = loc.T("install.status_kept")
		} else {
			fields.Set("CODE", rb.Code)
			*ops = append(*ops, bitrix24.Cmd{Key: key, Method: "bizproc.robot.add", Params: fields})
			item.Status = loc.T("install.status_bound")
		}
		items, keys = append(items, item), append(keys, key)
	}
	return items, keys
}

// robotRefused reports a robot registration Bitrix24 refused: the tab works
// without it, so the install goes on, and the report says what answered.
func robotRefused(loc *lang.Localizer, err error) string {
	if errors.Is(err, bitrix24.ErrInsufficientScope) || errors.Is(err, bitrix24.ErrMethodNotFound) {
		return loc.T("install.status_unavailable")
	}
	code := upstreamCode(err)
	if code == "" {
		code = "—"
	}
	return loc.T("install.status_robot_failed", "Code", code)
}

// alreadyInstalled is bizproc.robot.add's answer for a code registered
// meanwhile (a second install racing this one): as good as success.
func alreadyInstalled(err error) bool {
	var be *bitrix24.Error
	return errors.As(err, &be) && be.Code == "ERROR_ACTIVITY_ALREADY_INSTALLED"
}

// textIn is a text of the manifest in a language, English when it has none.
func textIn(m map[string]string, code string) string {
	if t := m[code]; t != "" {
		return t
	}
	return m["en"]
}
