package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// installCreds is what an install request claims: the installer frame's
// REFRESH_ID and friends, or ONAPPINSTALL's auth[...] block.
type installCreds struct {
	MemberID       string
	RefreshToken   secret.String
	ServerEndpoint string
	AppToken       secret.String
	// Scope is the granted scopes as Bitrix24 sent them with the request
	// (the frame's APPLICATION_SCOPE, the event's auth[scope]); "" when it
	// sent none.
	Scope string
	Lang  string
	// Legacy marks an older on-premise portal's installer frame: no
	// SERVER_ENDPOINT and no APPLICATION_TOKEN (docs/security.md).
	Legacy bool
}

// setupItem is one line of the install report.
type setupItem struct {
	Label  string
	Status string
}

// installPage is the data of install.html.
type installPage struct {
	base
	OK       bool
	TabTitle string
	Text     string
	Code     string
	Items    []setupItem
}

// install serves the UI installer that Bitrix24 opens in a slider when an
// admin installs the app. It verifies the posted tokens, stores the portal,
// binds what app.json declares and answers a page that calls
// BX24.installFinish(), without which Bitrix24 shows no tab at all.
func (h *Handlers) install(c *gin.Context) error {
	f, err := ParseFrame(c.Request.URL.Query(), c.Request.PostForm)
	if err != nil {
		return fail(http.StatusBadRequest, "error.bad_request", err)
	}
	loc := h.d.Lang.For(f.Lang)
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
	defer cancel()
	p, items, err := h.installPortal(ctx, installCreds{
		MemberID: f.MemberID, RefreshToken: f.RefreshID, ServerEndpoint: f.ServerEndpoint,
		AppToken: f.AppToken, Scope: f.Scope, Lang: loc.Code(),
		Legacy: f.ServerEndpoint == "" && f.AppToken.IsZero(),
	}, loc)
	if p == nil {
		return err
	}
	// Verified by the OAuth server: the portal may frame the report.
	c.Set(originKey, portalOrigin(p))
	page := installPage{base: h.base(loc), Items: items}
	status := http.StatusOK
	if err != nil {
		pr := asProblem(err)
		h.logProblem(c, pr)
		status, page.Text, page.Code = pr.status, pr.text(loc), pr.code
	} else {
		page.OK = true
		page.TabTitle = placementTitle(h.cfg.Manifest, loc.Code())
		h.d.Logger.InfoContext(ctx, "portal installed", "member", p.MemberID, "domain", p.Domain, "via", "installer", "legacy", f.AppToken.IsZero())
	}
	h.render(c, status, "install", page)
	return nil
}

// onAppInstall handles ONAPPINSTALL, which Bitrix24 may deliver late or
// not at all (since server 26.800.0 not at all to apps with an installer
// page): it is one more source of verified tokens, never the only one.
func (h *Handlers) onAppInstall(c *gin.Context) error {
	ev, err := ParseEvent(c.Request.PostForm)
	if err != nil || ev.Name != "ONAPPINSTALL" {
		return fail(http.StatusBadRequest, "error.bad_request", errors.Join(ErrBadFrame, err))
	}
	loc := h.d.Lang.For(ev.Data["LANGUAGE_ID"])
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
	defer cancel()
	p, _, err := h.installPortal(ctx, installCreds{
		MemberID: ev.Auth["member_id"], RefreshToken: secret.New(ev.Auth["refresh_token"]),
		ServerEndpoint: ev.Auth["server_endpoint"], AppToken: secret.New(ev.Auth["application_token"]),
		Scope: ev.Auth["scope"], Lang: loc.Code(),
	}, loc)
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(ctx, "portal installed", "member", p.MemberID, "domain", p.Domain, "via", "ONAPPINSTALL")
	return nil
}

// installPortal verifies install credentials and records the portal. The
// posted refresh token is traded at a trusted OAuth server for a new pair;
// the server's answer (which needs our client secret) names the portal's
// member_id and REST endpoint, so a forged request for somebody else's
// member_id changes nothing. Then, with that pair, it reads the app and
// the current bindings, stores the portal, and binds what app.json
// declares. It returns the verified portal (stored or not) whenever the
// OAuth server confirmed it, even if a later step failed.
func (h *Handlers) installPortal(ctx context.Context, cr installCreds, loc *lang.Localizer) (*store.Portal, []setupItem, error) {
	endpoint := cr.ServerEndpoint
	if cr.Legacy {
		// Older on-premise portals name no OAuth server; their Market apps
		// are served by the first one the operator trusts (oauth.bitrix.info
		// by default). The refresh token goes nowhere else.
		if servers := h.d.OAuth.Servers(); len(servers) > 0 {
			endpoint = servers[0]
		}
	}
	server, ok := h.d.OAuth.Trusted(endpoint)
	if !ok {
		return nil, nil, fail(http.StatusForbidden, "install.untrusted_server", fmt.Errorf("server endpoint %q", cr.ServerEndpoint))
	}
	if (cr.AppToken.IsZero() && !cr.Legacy) || cr.RefreshToken.IsZero() || !isMemberID(cr.MemberID) {
		return nil, nil, fail(http.StatusBadRequest, "error.bad_request", errors.New("install without member_id, refresh token or application token"))
	}
	fp := "refresh|" + h.d.Keys.Hash(cr.RefreshToken)
	if h.rejected.seen(fp, h.now()) {
		return nil, nil, fail(http.StatusForbidden, "install.unverified", errors.New("refresh token refused lately; not sent again"))
	}
	tok, err := h.d.OAuth.Refresh(ctx, server, cr.RefreshToken)
	if err != nil {
		if errors.Is(err, oauth.ErrInvalidGrant) {
			h.rejected.add(fp, h.now())
		}
		return nil, nil, h.refreshProblem(ctx, err, "install.unverified")
	}
	if tok.MemberID != cr.MemberID {
		return nil, nil, fail(http.StatusForbidden, "install.unverified", fmt.Errorf("token belongs to member %q, request claimed %q", tok.MemberID, cr.MemberID))
	}
	restEndpoint, domain, err := bitrix24.NormalizeEndpoint(tok.ClientEndpoint, h.cfg.AllowHTTP)
	if err != nil {
		return nil, nil, fail(http.StatusForbidden, "install.unverified", fmt.Errorf("client endpoint: %w", err))
	}
	p := &store.Portal{
		MemberID: tok.MemberID, Domain: domain, RESTEndpoint: restEndpoint, OAuthServer: tok.Server,
		Scope: cr.Scope, Status: tok.Status, InstalledBy: tok.UserID, Lang: cr.Lang,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenExpiry: tok.Expiry,
	}
	if !cr.AppToken.IsZero() {
		p.AppTokenHash = h.d.Keys.Hash(cr.AppToken)
	}
	if cr.Legacy {
		// A portal whose frames carried an application token never goes
		// back to frames without one: refuse the downgrade.
		old, err := h.d.Store.Portal(ctx, p.MemberID)
		if err == nil && old.Active() && old.AppTokenHash != "" {
			return p, nil, fail(http.StatusForbidden, "install.unverified", errors.New("installer frame without application token for a portal that had one"))
		}
	}
	// The token answer's "scope" is the literal "app" on real servers
	// (recorded, platform doc §2.2): the granted scopes are judged from
	// what Bitrix24 sent with the request, and from insufficient_scope
	// answers when it sent none.
	if missing := missingScopes(cr.Scope, h.cfg.Manifest.Required()); len(missing) > 0 {
		return p, nil, scopeProblem(fmt.Errorf("granted scope %q", cr.Scope), missing)
	}
	plan, err := h.readSetup(ctx, p)
	if err != nil {
		return p, nil, err
	}
	p.AppID, p.AppCode = plan.appID, plan.appCode
	if err := h.d.Store.SavePortal(ctx, p); err != nil {
		return nil, nil, fail(http.StatusInternalServerError, "error.internal", err)
	}
	items, err := h.bind(ctx, p, plan, loc)
	return p, items, err
}

// refreshProblem explains a failed refresh. The OAuth server refusing the
// app's own client_id or secret is the operator's fault, not the user's:
// it is logged at error level (through the 5xx status) and named as such.
// A dead grant asks for what renews it (deadKey: install again, or open
// the tab again).
func (h *Handlers) refreshProblem(ctx context.Context, err error, deadKey string) error {
	switch {
	case oauth.CredentialsRejected(err):
		h.credentialsRejected(ctx, err)
		pr := fail(http.StatusServiceUnavailable, "error.app_credentials", err)
		pr.code = upstreamCode(err)
		return pr
	case errors.Is(err, oauth.ErrUnreachable), errors.Is(err, context.DeadlineExceeded):
		return fail(http.StatusBadGateway, "error.unreachable", err)
	case errors.Is(err, oauth.ErrPaymentRequired):
		pr := fail(http.StatusForbidden, "error.PAYMENT_REQUIRED", err)
		pr.code = upstreamCode(err)
		return pr
	}
	pr := fail(http.StatusForbidden, deadKey, err)
	pr.code = upstreamCode(err)
	return pr
}

// credentialsRejected raises the alarm for an OAuth answer that refuses
// the app's own client_id or secret: every install and every refresh fails
// until the operator fixes B24_CLIENT_ID / B24_CLIENT_SECRET.
func (h *Handlers) credentialsRejected(ctx context.Context, err error) {
	h.d.Logger.ErrorContext(ctx, "the OAuth server rejects this app's credentials: check B24_CLIENT_ID and B24_CLIENT_SECRET against the Bitrix24 vendor console",
		"code", upstreamCode(err), "err", err)
}

// missingScopes lists the wanted scopes that a granted list (comma or
// space separated, as Bitrix24 sends it in different places) lacks. An
// empty list says nothing and lacks nothing.
func missingScopes(granted string, want []string) []string {
	have := strings.FieldsFunc(granted, func(r rune) bool { return r == ',' || r == ' ' })
	if len(have) == 0 {
		return nil
	}
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// scopeProblem tells an admin which permission the app lacks and where it
// is added.
func scopeProblem(cause error, missing []string) *problem {
	pr := fail(http.StatusForbidden, "install.scope_missing", fmt.Errorf("missing scope %s: %w", strings.Join(missing, ","), cause))
	pr.args = []any{"Scopes", strings.Join(missing, ", ")}
	pr.code = "insufficient_scope"
	return pr
}

// binding is a placement or event binding as placement.get / event.get
// report it (Go's JSON decoding matches the keys case-insensitively).
type binding struct {
	Placement string `json:"placement"`
	Event     string `json:"event"`
	Handler   string `json:"handler"`
}

// appInfo is the part of app.info the app checks: the app as the portal
// knows it.
type appInfo struct {
	ID   bitrix24.ID `json:"ID"`
	Code string      `json:"CODE"`
}

// setupPlan is what readSetup found on the portal.
type setupPlan struct {
	appID      int64
	appCode    string
	placements []binding
	events     []binding
	// robots are the codes bizproc.robot.list names; robotsErr its error
	// (no bizproc scope, no automation on the plan): robots unavailable.
	robots    []string
	robotsErr error
}

// readSetup reads, with the installer's fresh token and in one batch, the
// token's user, the app as the portal knows it and the current placement
// and event bindings. Only a portal administrator installs: a token of
// anyone else stops here (profile ADMIN, and placement.get is for admins
// only), before anything is stored.
func (h *Handlers) readSetup(ctx context.Context, p *store.Portal) (*setupPlan, error) {
	cmds := []bitrix24.Cmd{
		{Key: "me", Method: "profile"},
		{Key: "app", Method: "app.info"},
		{Key: "placements", Method: "placement.get"},
		{Key: "events", Method: "event.get"},
	}
	if len(h.cfg.Manifest.Robots) > 0 {
		cmds = append(cmds, bitrix24.Cmd{Key: "robots", Method: "bizproc.robot.list"})
	}
	cur, err := h.d.REST.Batch(ctx, p.RESTEndpoint, p.AccessToken, false, cmds)
	if err != nil {
		return nil, bindProblem("", err)
	}
	var (
		plan setupPlan
		ai   appInfo
		me   struct {
			ID    bitrix24.ID   `json:"ID"`
			Admin bitrix24.Bool `json:"ADMIN"`
		}
	)
	if err := cur.Decode("me", &me); err != nil {
		return nil, bindProblem("profile", err)
	}
	if !me.Admin || int64(me.ID) != p.InstalledBy {
		return nil, fail(http.StatusForbidden, "install.not_admin",
			fmt.Errorf("user %d (admin %v) is not the token's administrator %d", me.ID, bool(me.Admin), p.InstalledBy))
	}
	if err := cur.Decode("app", &ai); err != nil {
		return nil, bindProblem("app.info", err)
	}
	if err := cur.Decode("placements", &plan.placements); err != nil {
		return nil, bindProblem("placement.get", err)
	}
	if err := cur.Decode("events", &plan.events); err != nil {
		return nil, bindProblem("event.get", err)
	}
	if len(h.cfg.Manifest.Robots) > 0 {
		if plan.robotsErr = cur.Decode("robots", &plan.robots); plan.robotsErr != nil {
			h.d.Logger.WarnContext(ctx, "automation rules unavailable: bizproc.robot.list failed", "member", p.MemberID, "code", upstreamCode(plan.robotsErr))
		}
	}
	plan.appID, plan.appCode = int64(ai.ID), ai.Code
	return &plan, nil
}

// bind makes the portal's placements and events exactly what app.json
// declares, with absolute handler URLs under the app's base URL. It starts
// from the bindings readSetup found, so a reinstall keeps what is right,
// replaces a handler whose URL changed, and never trips over "Handler
// already binded" (which is treated as success anyway, in case of a race).
func (h *Handlers) bind(ctx context.Context, p *store.Portal, plan *setupPlan, loc *lang.Localizer) ([]setupItem, error) {
	var ops []bitrix24.Cmd
	var items []setupItem
	m := h.cfg.Manifest
	for _, pl := range m.Placements {
		want := manifest.Absolute(h.cfg.BaseURL, pl.Handler)
		bind := url.Values{"PLACEMENT": {pl.Placement}, "HANDLER": {want}, "TITLE": {pl.Title["en"]}}
		for code, title := range pl.Title {
			bind.Set("LANG_ALL["+code+"][TITLE]", title)
		}
		status := reconcile(&ops, plan.placements, func(b binding) string { return b.Placement }, pl.Placement, want,
			"placement", func(old string) url.Values { return url.Values{"PLACEMENT": {pl.Placement}, "HANDLER": {old}} }, bind)
		label := "install.placement"
		if pl.Placement == placementLeadListMenu {
			label = "install.list_menu"
		}
		items = append(items, setupItem{Label: loc.T(label, "Title", titleIn(pl, loc.Code())), Status: loc.T(status)})
	}
	for _, ev := range m.EventList() {
		if ev.Name == "ONAPPINSTALL" {
			// Not the app's to bind: it is the console's "installation
			// event handler URL", and since server 26.800.0 Bitrix24 drops
			// any ONAPPINSTALL binding on install and update (recorded,
			// platform doc), so binding it here would only be undone.
			continue
		}
		want := manifest.Absolute(h.cfg.BaseURL, ev.Handler)
		status := reconcile(&ops, plan.events, func(b binding) string { return b.Event }, ev.Name, want,
			"event", func(old string) url.Values { return url.Values{"event": {ev.Name}, "handler": {old}} },
			url.Values{"event": {ev.Name}, "handler": {want}})
		items = append(items, setupItem{Label: loc.T("install.event", "Event", ev.Name), Status: loc.T(status)})
	}
	robotItems, robotKeys := h.robotOps(&ops, plan, loc)
	if len(ops) == 0 {
		return append(items, robotItems...), nil
	}
	res, err := h.d.REST.Batch(ctx, p.RESTEndpoint, p.AccessToken, false, ops)
	if err != nil {
		return items, bindProblem("", err)
	}
	for i, key := range robotKeys {
		// A robot Bitrix24 refuses leaves the tab working: the report
		// says so, and the install goes on.
		if err := res.Err(key); key != "" && err != nil && !alreadyInstalled(err) {
			h.d.Logger.WarnContext(ctx, "automation rule not registered", "member", p.MemberID, "code", upstreamCode(err), "err", err)
			robotItems[i].Status = robotRefused(loc, err)
		}
	}
	for _, op := range ops {
		if err := res.Err(op.Key); err != nil && !alreadyBound(err) && !slices.Contains(robotKeys, op.Key) {
			return items, bindProblem(op.Method, err)
		}
	}
	return append(items, robotItems...), nil
}

// reconcile compares the current bindings of one placement or event with
// the wanted handler, appends to ops the calls that set it right (kind
// ".unbind" for each stale handler, ".bind" unless want is bound already)
// and returns the status to report.
func reconcile(ops *[]bitrix24.Cmd, cur []binding, name func(binding) string, code, want, kind string,
	unbind func(old string) url.Values, bind url.Values) string {
	found, stale := false, 0
	for _, b := range cur {
		switch {
		case !strings.EqualFold(name(b), code):
		case b.Handler == want:
			found = true
		default:
			stale++
			*ops = append(*ops, bitrix24.Cmd{Key: fmt.Sprintf("op%d", len(*ops)), Method: kind + ".unbind", Params: unbind(b.Handler)})
		}
	}
	if found && stale == 0 {
		return "install.status_kept"
	}
	*ops = append(*ops, bitrix24.Cmd{Key: fmt.Sprintf("op%d", len(*ops)), Method: kind + ".bind", Params: bind})
	if stale > 0 {
		return "install.status_replaced"
	}
	return "install.status_bound"
}

// alreadyBound recognises the answers for a binding that already exists.
func alreadyBound(err error) bool {
	var be *bitrix24.Error
	if !errors.As(err, &be) {
		return false
	}
	return errors.Is(err, bitrix24.ErrHandlerAlreadyBound) ||
		strings.Contains(strings.ToLower(be.Description), "already binded") ||
		strings.Contains(strings.ToLower(be.Description), "already exist")
}

// bindProblem explains a failed setup call (method, when known, names the
// call that failed).
func bindProblem(method string, err error) error {
	if errors.Is(err, bitrix24.ErrAccessDenied) || errors.Is(err, bitrix24.ErrWrongAuthType) {
		return fail(http.StatusForbidden, "install.not_admin", err)
	}
	if errors.Is(err, bitrix24.ErrInsufficientScope) {
		// The answer does not say which scope; the method does.
		scope := "placement"
		switch {
		case strings.HasPrefix(method, "crm."):
			scope = "crm"
		case strings.HasPrefix(method, "bizproc."):
			scope = "bizproc"
		}
		return scopeProblem(err, []string{scope})
	}
	pr := fail(http.StatusBadGateway, "install.bind_failed", err)
	var be *bitrix24.Error
	if errors.As(err, &be) {
		pr.code = be.Code
	} else {
		pr.code = "unreachable"
	}
	return pr
}

// placementTitle returns the lead tab's title in a language.
func placementTitle(m *manifest.Manifest, code string) string {
	pl, _ := m.Placement(placementLeadTab)
	return titleIn(pl, code)
}

func titleIn(pl manifest.Placement, code string) string { return textIn(pl.Title, code) }
