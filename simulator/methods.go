package simulator

import (
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// methods returns the portal's method table (built once in routes).
func (p *Portal) methods() map[string]methodDef { return p.table }

func (p *Portal) buildMethods() map[string]methodDef {
	return map[string]methodDef{
		"batch":        {scope: "basic"}, // handled by runBatch
		"app.info":     {scope: "basic", fn: p.mAppInfo},
		"profile":      {scope: "basic", fn: p.mProfile},
		"scope":        {scope: "basic", fn: p.mScope},
		"user.current": {scope: "user", fn: p.mUserCurrent},

		"placement.bind":   {scope: "placement", fn: p.mPlacementBind},
		"placement.unbind": {scope: "placement", fn: p.mPlacementUnbind},
		"placement.get":    {scope: "placement", fn: p.mPlacementGet},
		"placement.list":   {scope: "placement", fn: p.mPlacementList},

		"event.bind":   {scope: "basic", fn: p.mEventBind},
		"event.unbind": {scope: "basic", fn: p.mEventUnbind},
		"event.get":    {scope: "basic", fn: p.mEventGet},

		"crm.lead.get":                  {scope: "crm", fn: p.mLeadGet},
		"crm.item.get":                  {scope: "crm", fn: p.mItemGet},
		"crm.lead.list":                 {scope: "crm", fn: p.mLeadList},
		"crm.lead.contact.items.get":    {scope: "crm", fn: p.mLeadContactItemsGet},
		"crm.lead.contact.items.set":    {scope: "crm", fn: p.mLeadContactItemsSet},
		"crm.lead.contact.items.delete": {scope: "crm", fn: p.mLeadContactItemsDelete},
		"crm.lead.contact.add":          {scope: "crm", fn: p.mLeadContactAdd},
		"crm.lead.contact.delete":       {scope: "crm", fn: p.mLeadContactDelete},
		"crm.lead.contact.fields":       {scope: "crm", fn: p.mLeadContactFields},
		"crm.contact.get":               {scope: "crm", fn: p.mContactGet},
		"crm.contact.list":              {scope: "crm", fn: p.mContactList},
	}
}

// okResult is a successful method result without paging.
func okResult(v any) (result, *apiError) { return result{value: v}, nil }

func (u User) canRead() bool { return u.Admin || u.CanRead }
func (u User) canEdit() bool { return u.Admin || u.CanEdit }

// ---- app.info, profile, user.current, scope ----

func (p *Portal) appInfoLocked() obj {
	app := p.s.app
	license, ltype, family := p.lang+"_pro100", "pro100", "pro"
	if p.bucket.burst == 250 {
		license, ltype, family = p.lang+"_ent250", "ent250", "ent"
	}
	return newObj().
		Set("ID", 1).
		Set("CODE", app.Code).
		Set("VERSION", appVersion(app.Version)).
		Set("STATUS", app.Status).
		Set("INSTALLED", p.state == installed).
		Set("PAYMENT_EXPIRED", "N").
		Set("DAYS", nil).
		Set("LANGUAGE_ID", p.lang).
		Set("LICENSE", license).
		Set("LICENSE_TYPE", ltype).
		Set("LICENSE_FAMILY", family)
}

// appVersion is numeric when it can be: the docs show VERSION as a number.
func appVersion(v string) any {
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	return v
}

func (p *Portal) mAppInfo(c *callCtx) (result, *apiError) { return okResult(p.appInfoLocked()) }

func (p *Portal) mProfile(c *callCtx) (result, *apiError) {
	return okResult(newObj().
		Set("ID", strconv.Itoa(c.userID)).
		Set("ADMIN", c.user.Admin).
		Set("NAME", c.user.Name).
		Set("LAST_NAME", c.user.LastName).
		Set("PERSONAL_GENDER", "").
		// Recorded (CRestProvider::getProfile): TIME_ZONE is empty when the
		// zone is automatic; the offset is a number of seconds.
		Set("TIME_ZONE", "").
		Set("TIME_ZONE_OFFSET", 0))
}

func (p *Portal) mScope(c *callCtx) (result, *apiError) {
	return okResult(append([]string(nil), p.s.app.Scope...))
}

func (p *Portal) mUserCurrent(c *callCtx) (result, *apiError) {
	return okResult(newObj().
		Set("ID", strconv.Itoa(c.userID)).
		Set("ACTIVE", true).
		Set("NAME", c.user.Name).
		Set("LAST_NAME", c.user.LastName).
		Set("IS_ONLINE", "Y"))
}

// ---- handler URL check shared by placement.bind and event.bind ----

// checkHandlerURL applies the documented rule: an http(s) URL with a domain;
// localhost and local addresses fail unless AllowLocalHandlers.
func (p *Portal) checkHandlerURL(raw string) *apiError {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return &apiError{status: 400, code: "ERROR_WRONG_HANDLER_URL", desc: "Wrong handler URL"}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return &apiError{status: 400, code: "ERROR_UNSUPPORTED_PROTOCOL", desc: "Unsupported event handler protocol"}
	}
	if p.s.allowLocal {
		return nil
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	local := host == "localhost" || strings.HasSuffix(host, ".localhost") || !strings.Contains(host, ".")
	if ip := net.ParseIP(host); ip != nil {
		local = ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast()
	}
	if local {
		// SILENT: the HTTP status of this error is undocumented; 400.
		return &apiError{status: 400, code: "ERROR_WRONG_HANDLER_URL", desc: "Wrong handler URL"}
	}
	return nil
}

// ---- placement.* ----

// placementScopes lists the placement codes the simulator knows with the tool
// scope each needs besides "placement" (api-reference/widgets/crm/*.md).
func placementScopes() map[string]string {
	m := map[string]string{"LEFT_MENU": "", "REST_APP_URI": ""}
	for _, ent := range []string{"LEAD", "DEAL", "CONTACT", "COMPANY"} {
		for _, suf := range []string{"DETAIL_TAB", "DETAIL_TOOLBAR", "DETAIL_ACTIVITY", "LIST_MENU", "LIST_TOOLBAR", "ACTIVITY_TIMELINE_MENU", "ROBOT_DESIGNER_TOOLBAR", "DOCUMENTGENERATOR_BUTTON"} {
			m["CRM_"+ent+"_"+suf] = "crm"
		}
	}
	return m
}

func argumentError(name string) *apiError {
	// placement-bind.md documents ERROR_ARGUMENT with HTTP 200.
	return &apiError{status: 200, code: "ERROR_ARGUMENT", desc: "Argument '" + name + "' is null or empty", extra: map[string]any{"argument": name}}
}

func (p *Portal) mPlacementBind(c *callCtx) (result, *apiError) {
	if !c.user.Admin {
		return result{}, errAdminOnly()
	}
	code := strings.ToUpper(strings.TrimSpace(str(first(c.param("PLACEMENT")))))
	if code == "" {
		return result{}, argumentError("PLACEMENT")
	}
	scope, known := placementScopes()[code]
	if !known || !p.s.hasScope(scope) {
		// The docs: unknown code, or the app lacks the tool scope.
		return result{}, &apiError{status: 400, code: "ERROR_PLACEMENT_NOT_FOUND", desc: "Placement not found"}
	}
	handler := strings.TrimSpace(str(first(c.param("HANDLER"))))
	if handler == "" {
		return result{}, argumentError("HANDLER")
	}
	if uid := phpInt(first(c.param("USER_ID"))); uid != 0 && code != "PAGE_BACKGROUND_WORKER" {
		return result{}, &apiError{status: 400, code: "ERROR_PLACEMENT_USER_MODE", desc: "User mode is not available"}
	}
	if e := p.checkHandlerURL(handler); e != nil {
		return result{}, e
	}
	for _, b := range p.placements {
		if b.Placement == code && b.Handler == handler {
			// Recorded: rest/lib/api/placement.php, bitrix24/b24phpsdk#446.
			return result{}, &apiError{status: 400, code: "ERROR_CORE", desc: "Unable to set placement handler: Handler already binded"}
		}
	}
	b := PlacementBinding{
		Placement:   code,
		Handler:     handler,
		Title:       str(first(c.param("TITLE"))),
		Description: str(first(c.param("DESCRIPTION"))),
		GroupName:   str(first(c.param("GROUP_NAME"))),
	}
	if la, ok := first(c.param("LANG_ALL")).(*omap); ok {
		b.LangAll = map[string]PlacementLang{}
		for _, lang := range la.keys {
			e, _ := la.vals[lang].(*omap)
			b.LangAll[lang] = PlacementLang{
				Title:       str(first(e.GetFold("TITLE"))),
				Description: str(first(e.GetFold("DESCRIPTION"))),
				GroupName:   str(first(e.GetFold("GROUP_NAME"))),
			}
		}
	}
	if o, ok := first(c.param("OPTIONS")).(*omap); ok {
		b.Options = map[string]any{}
		for k, v := range o.vals {
			b.Options[k] = toGeneric(v)
		}
	}
	p.placements = append(p.placements, b)
	p.s.log("portal %s: placement %s bound to %s", p.memberID, code, handler)
	return okResult(true)
}

// first drops the "found" flag of a lookup, for optional parameters.
func first(v any, _ bool) any { return v }

func (p *Portal) mPlacementUnbind(c *callCtx) (result, *apiError) {
	if !c.user.Admin {
		return result{}, errAdminOnly()
	}
	code := strings.ToUpper(strings.TrimSpace(str(first(c.param("PLACEMENT")))))
	if code == "" {
		return result{}, argumentError("PLACEMENT")
	}
	handler := strings.TrimSpace(str(first(c.param("HANDLER"))))
	kept := p.placements[:0]
	n := 0
	for _, b := range p.placements {
		if b.Placement == code && (handler == "" || b.Handler == handler) {
			n++
			continue
		}
		kept = append(kept, b)
	}
	p.placements = kept
	return okResult(newObj().Set("count", n))
}

func (p *Portal) mPlacementGet(c *callCtx) (result, *apiError) {
	if !c.user.Admin {
		return result{}, errAdminOnly()
	}
	out := []any{}
	for _, b := range p.placements {
		opts := newOmap() // [] when empty, as in the docs
		keys := make([]string, 0, len(b.Options))
		for k := range b.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			opts.Set(k, b.Options[k])
		}
		langs := newOmap()
		for _, l := range sortedKeys(b.LangAll) {
			e := b.LangAll[l]
			langs.Set(l, newObj().Set("TITLE", e.Title).Set("DESCRIPTION", e.Description).Set("GROUP_NAME", e.GroupName))
		}
		out = append(out, newObj().
			Set("placement", b.Placement).
			Set("userId", b.UserID).
			Set("handler", b.Handler).
			Set("options", opts).
			Set("title", b.Title).
			Set("description", b.Description).
			Set("langAll", langs))
	}
	return okResult(out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (p *Portal) mPlacementList(c *callCtx) (result, *apiError) {
	codes := []string{}
	for code, scope := range placementScopes() {
		if p.s.hasScope(scope) {
			codes = append(codes, code)
		}
	}
	sort.Strings(codes)
	return okResult(codes)
}

// ---- event.* ----

// eventScopes lists the events the simulator knows and the scope each needs.
func eventScopes() map[string]string {
	m := map[string]string{
		"ONAPPINSTALL": "", "ONAPPUNINSTALL": "", "ONAPPUPDATE": "", "ONAPPPAYMENT": "", "ONAPPTEST": "",
	}
	for _, ent := range []string{"LEAD", "CONTACT", "DEAL", "COMPANY"} {
		for _, act := range []string{"ADD", "UPDATE", "DELETE"} {
			m["ONCRM"+ent+act] = "crm"
		}
	}
	return m
}

func (p *Portal) mEventBind(c *callCtx) (result, *apiError) {
	event := strings.ToUpper(strings.TrimSpace(str(first(c.param("event")))))
	scope, known := eventScopes()[event]
	if !known || !p.s.hasScope(scope) {
		return result{}, &apiError{status: 400, code: "ERROR_EVENT_NOT_FOUND", desc: "Event not found"}
	}
	handler := strings.TrimSpace(str(first(c.param("handler"))))
	if handler == "" {
		// SILENT: the error for a missing handler is undocumented.
		return result{}, argumentErrorStatus("handler", 400)
	}
	authType := phpInt(first(c.param("auth_type")))
	offline := strings.EqualFold(str(first(c.param("event_type"))), "offline")
	// event-bind.md: non-admins may bind, but only online events authorized as
	// themselves (unlike placement.*, event.bind is not admin-only).
	if !c.user.Admin && (offline || (authType != 0 && authType != c.userID)) {
		return result{}, &apiError{status: 403, code: "ACCESS_DENIED", desc: "Access denied!"}
	}
	// SILENT: the handler-URL rule of placement.bind is applied here too.
	if e := p.checkHandlerURL(handler); e != nil {
		return result{}, e
	}
	for _, e := range p.events {
		if e.Event == event && e.Handler == handler && e.AuthType == authType {
			// Recorded from rest/lib/api/event.php (the docs' example
			// ERROR_HANDLER_ALREADY_EXIST is not what the server sends).
			return result{}, &apiError{status: 400, code: "ERROR_CORE", desc: "Unable to set event handler: Handler already binded"}
		}
	}
	p.nextEvent++
	p.events = append(p.events, EventBinding{ID: p.nextEvent, Event: event, Handler: handler, AuthType: authType, Offline: offline})
	p.s.log("portal %s: event %s bound to %s", p.memberID, event, handler)
	return okResult(true)
}

func argumentErrorStatus(name string, status int) *apiError {
	e := argumentError(name)
	e.status = status
	return e
}

func (p *Portal) mEventUnbind(c *callCtx) (result, *apiError) {
	event := strings.ToUpper(strings.TrimSpace(str(first(c.param("event")))))
	handler := strings.TrimSpace(str(first(c.param("handler"))))
	if event == "" {
		return result{}, argumentErrorStatus("event", 400)
	}
	if handler == "" {
		return result{}, argumentErrorStatus("handler", 400)
	}
	authV, hasAuth := c.param("auth_type")
	kept := p.events[:0]
	n := 0
	for _, e := range p.events {
		if e.Event == event && e.Handler == handler && (!hasAuth || e.AuthType == phpInt(authV)) {
			n++
			continue
		}
		kept = append(kept, e)
	}
	p.events = kept
	return okResult(newObj().Set("count", n))
}

func (p *Portal) mEventGet(c *callCtx) (result, *apiError) {
	out := []any{}
	for _, e := range p.events {
		off := 0
		if e.Offline {
			off = 1
		}
		out = append(out, newObj().
			Set("event", e.Event).
			Set("handler", e.Handler).
			Set("auth_type", strconv.Itoa(e.AuthType)).
			Set("offline", off))
	}
	return okResult(out)
}
