package simulator

import (
	"cmp"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// buildMethods is the portal's method table; batch is not in it, runLocked
// and runBatch handle it.
func (p *Portal) buildMethods() map[string]methodDef {
	return map[string]methodDef{
		"app.info":     {scope: "basic", fn: p.mAppInfo},
		"profile":      {scope: "basic", fn: p.mProfile},
		"scope":        {scope: "basic", fn: p.mScope},
		"user.current": {scope: userScopes, fn: p.mUserCurrent},
		"user.get":     {scope: userScopes, fn: p.mUserGet},

		"placement.bind":   {scope: "placement", admin: true, fn: p.mPlacementBind},
		"placement.unbind": {scope: "placement", admin: true, fn: p.mPlacementUnbind},
		"placement.get":    {scope: "placement", admin: true, fn: p.mPlacementGet},
		"placement.list":   {scope: "placement", fn: p.mPlacementList},

		"bizproc.robot.add":    {scope: "bizproc", admin: true, fn: p.mRobotAdd},
		"bizproc.robot.update": {scope: "bizproc", admin: true, fn: p.mRobotUpdate},
		"bizproc.robot.delete": {scope: "bizproc", admin: true, fn: p.mRobotDelete},
		"bizproc.robot.list":   {scope: "bizproc", admin: true, fn: p.mRobotList},
		"bizproc.event.send":   {scope: "bizproc", fn: p.mEventSend},

		"event.bind":   {scope: "basic", fn: p.mEventBind},
		"event.unbind": {scope: "basic", fn: p.mEventUnbind},
		"event.get":    {scope: "basic", fn: p.mEventGet},

		// The maps of leads and contacts live as long as the portal.
		"crm.lead.get":                  {scope: "crm", fn: crmGet(p.leads, leadRecord)},
		"crm.lead.list":                 {scope: "crm", fn: crmList(p.leads, leadRecord)},
		"crm.lead.update":               {scope: "crm", fn: p.mLeadUpdate},
		"crm.contact.get":               {scope: "crm", fn: crmGet(p.contacts, contactRecord)},
		"crm.contact.list":              {scope: "crm", fn: crmList(p.contacts, contactRecord)},
		"crm.item.get":                  {scope: "crm", fn: p.mItemGet},
		"crm.item.list":                 {scope: "crm", fn: p.mItemList},
		"crm.status.list":               {scope: "crm", fn: p.mStatusList},
		"crm.lead.contact.items.get":    {scope: "crm", fn: p.mLeadContactItemsGet},
		"crm.lead.contact.items.set":    {scope: "crm", fn: p.editLinks(p.itemsSet)},
		"crm.lead.contact.items.delete": {scope: "crm", fn: p.editLinks(itemsDelete)},
		"crm.lead.contact.add":          {scope: "crm", fn: p.editLinks(p.linkAdd)},
		"crm.lead.contact.delete":       {scope: "crm", fn: p.editLinks(linkDelete)},
		"crm.lead.contact.fields":       {scope: "crm", fn: mLeadContactFields},
	}
}

// okResult is a successful method result without paging.
func okResult(v any) (result, *apiError) { return result{value: v}, nil }

func (u User) canRead() bool { return u.Admin || u.CanRead }
func (u User) canEdit() bool { return u.Admin || u.CanEdit }

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }

// ---- app.info, profile, scope (user.* in users.go) ----

func (p *Portal) appInfoLocked() obj {
	app := p.s.app
	license, ltype, family := p.lang+"_pro100", "pro100", "pro"
	if p.bucket.burst == 250 {
		license, ltype, family = p.lang+"_ent250", "ent250", "ent"
	}
	return fields("ID", 1, "CODE", app.Code, "VERSION", appVersion(app.Version), "STATUS", app.Status,
		"INSTALLED", p.state == installed, "PAYMENT_EXPIRED", "N", "DAYS", nil, "LANGUAGE_ID", p.lang,
		"LICENSE", license, "LICENSE_TYPE", ltype, "LICENSE_FAMILY", family)
}

// appVersion is numeric when it can be: the docs show VERSION as a number.
func appVersion(v string) any {
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	return v
}

func (p *Portal) mAppInfo(c *callCtx) (result, *apiError) { return okResult(p.appInfoLocked()) }

// mProfile: recorded (CRestProvider::getProfile), TIME_ZONE is empty when
// the zone is automatic; the offset is a number of seconds.
func (p *Portal) mProfile(c *callCtx) (result, *apiError) {
	zone, offset := profileTimeZone(c.user, p.s.nowLocked())
	return okResult(fields("ID", strconv.Itoa(c.userID), "ADMIN", c.user.Admin, "NAME", c.user.Name,
		"LAST_NAME", c.user.LastName, "PERSONAL_GENDER", "", "TIME_ZONE", zone, "TIME_ZONE_OFFSET", offset))
}

func (p *Portal) mScope(c *callCtx) (result, *apiError) {
	return okResult(slices.Clone(p.s.app.Scope))
}

// ---- handler URL check shared by placement.bind and event.bind ----

// checkHandlerURL applies the documented rule: an http(s) URL with a domain;
// localhost and local addresses fail unless AllowLocalHandlers.
// SILENT: the HTTP status of the local-address error is undocumented; 400.
func (p *Portal) checkHandlerURL(raw string) *apiError {
	wrong := apiErr(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL")
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return wrong
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return apiErr(400, "ERROR_UNSUPPORTED_PROTOCOL", "Unsupported event handler protocol")
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
		return wrong
	}
	return nil
}

// errAlreadyBound is recorded from rest/lib/api/placement.php and event.php
// (bitrix24/b24phpsdk#446; the docs' example ERROR_HANDLER_ALREADY_EXIST is
// not what the server sends).
func errAlreadyBound(what string) *apiError {
	return apiErr(400, "ERROR_CORE", "Unable to set "+what+" handler: Handler already binded")
}

// argumentError is ERROR_ARGUMENT, which placement-bind.md documents with
// HTTP 200.
func argumentError(name string, status int) *apiError {
	e := apiErr(status, "ERROR_ARGUMENT", "Argument '"+name+"' is null or empty")
	e.extra = map[string]any{"argument": name}
	return e
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

// bindArgs reads the code and the handler of placement.bind or event.bind,
// named as each documents them: a code the simulator does not know, or whose
// scope the app lacks, is notFound; a missing handler is ERROR_ARGUMENT.
func (p *Portal) bindArgs(c *callCtx, codeName, handlerName string, scopes map[string]string, notFound *apiError, argStatus int) (code, handler string, _ *apiError) {
	code = c.code(codeName)
	if scope, known := scopes[code]; !known || !p.s.hasScope(scope) {
		return "", "", notFound
	}
	if handler = strings.TrimSpace(c.str(handlerName)); handler == "" {
		return "", "", argumentError(handlerName, argStatus)
	}
	return code, handler, nil
}

func (p *Portal) mPlacementBind(c *callCtx) (result, *apiError) {
	if c.code("PLACEMENT") == "" {
		return result{}, argumentError("PLACEMENT", 200)
	}
	code, handler, e := p.bindArgs(c, "PLACEMENT", "HANDLER", placementScopes(), apiErr(400, "ERROR_PLACEMENT_NOT_FOUND", "Placement not found"), 200)
	if e != nil {
		return result{}, e
	}
	if c.int("USER_ID") != 0 && code != "PAGE_BACKGROUND_WORKER" {
		return result{}, apiErr(400, "ERROR_PLACEMENT_USER_MODE", "User mode is not available")
	}
	if e := p.checkHandlerURL(handler); e != nil {
		return result{}, e
	}
	if slices.ContainsFunc(p.placements, func(b PlacementBinding) bool { return b.Placement == code && b.Handler == handler }) {
		return result{}, errAlreadyBound("placement")
	}
	b := PlacementBinding{Placement: code, Handler: handler, Title: c.str("TITLE"), Description: c.str("DESCRIPTION"), GroupName: c.str("GROUP_NAME")}
	if la, ok := c.param("LANG_ALL").(*omap); ok {
		b.LangAll = map[string]PlacementLang{}
		for _, lang := range la.keys {
			e, _ := la.vals[lang].(*omap)
			b.LangAll[lang] = PlacementLang{Title: str(e.fold("TITLE")), Description: str(e.fold("DESCRIPTION")), GroupName: str(e.fold("GROUP_NAME"))}
		}
	}
	// widgets/crm/list-menu.md: the list menus keep no OPTIONS
	// (placement.get answers [] for them).
	if o, ok := c.param("OPTIONS").(*omap); ok && !strings.HasSuffix(code, "_LIST_MENU") {
		b.Options = map[string]any{}
		for k, v := range o.vals {
			b.Options[k] = toGeneric(v)
		}
	}
	p.placements = append(p.placements, b)
	p.s.log("portal %s: placement %s bound to %s", p.memberID, code, handler)
	return okResult(true)
}

// removeWhere deletes the matching elements and answers their count.
func removeWhere[T any](s *[]T, match func(T) bool) (result, *apiError) {
	n := len(*s)
	*s = slices.DeleteFunc(*s, match)
	return okResult(fields("count", n-len(*s)))
}

func (p *Portal) mPlacementUnbind(c *callCtx) (result, *apiError) {
	code := c.code("PLACEMENT")
	if code == "" {
		return result{}, argumentError("PLACEMENT", 200)
	}
	handler := strings.TrimSpace(c.str("HANDLER"))
	return removeWhere(&p.placements, func(b PlacementBinding) bool {
		return b.Placement == code && (handler == "" || b.Handler == handler)
	})
}

func (p *Portal) mPlacementGet(c *callCtx) (result, *apiError) {
	out := []any{}
	for _, b := range p.placements {
		opts := newOmap() // [] when empty, as in the docs
		for _, k := range sortedKeys(b.Options) {
			opts.Set(k, b.Options[k])
		}
		langs := newOmap()
		for _, l := range sortedKeys(b.LangAll) {
			e := b.LangAll[l]
			langs.Set(l, fields("TITLE", e.Title, "DESCRIPTION", e.Description, "GROUP_NAME", e.GroupName))
		}
		out = append(out, fields("placement", b.Placement, "userId", b.UserID, "handler", b.Handler,
			"options", opts, "title", b.Title, "description", b.Description, "langAll", langs))
	}
	return okResult(out)
}

func (p *Portal) mPlacementList(c *callCtx) (result, *apiError) {
	codes := []string{}
	for code, scope := range placementScopes() {
		if p.s.hasScope(scope) {
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
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
	// SILENT: the error for a missing handler is undocumented; 400.
	event, handler, e := p.bindArgs(c, "event", "handler", eventScopes(), apiErr(400, "ERROR_EVENT_NOT_FOUND", "Event not found"), 400)
	if e != nil {
		return result{}, e
	}
	authType := c.int("auth_type")
	offline := strings.EqualFold(c.str("event_type"), "offline")
	// event-bind.md: non-admins may bind, but only online events authorized as
	// themselves (unlike placement.*, event.bind is not admin-only).
	if !c.user.Admin && (offline || (authType != 0 && authType != c.userID)) {
		return result{}, errAdminOnly()
	}
	// SILENT: the handler-URL rule of placement.bind is applied here too.
	if e := p.checkHandlerURL(handler); e != nil {
		return result{}, e
	}
	if slices.ContainsFunc(p.events, func(e EventBinding) bool {
		return e.Event == event && e.Handler == handler && e.AuthType == authType
	}) {
		return result{}, errAlreadyBound("event")
	}
	p.nextEvent++
	p.events = append(p.events, EventBinding{ID: p.nextEvent, Event: event, Handler: handler, AuthType: authType, Offline: offline})
	p.s.log("portal %s: event %s bound to %s", p.memberID, event, handler)
	return okResult(true)
}

func (p *Portal) mEventUnbind(c *callCtx) (result, *apiError) {
	event, handler := c.code("event"), strings.TrimSpace(c.str("handler"))
	if event == "" {
		return result{}, argumentError("event", 400)
	}
	if handler == "" {
		return result{}, argumentError("handler", 400)
	}
	authV, hasAuth := c.params.GetFold("auth_type")
	return removeWhere(&p.events, func(e EventBinding) bool {
		return e.Event == event && e.Handler == handler && (!hasAuth || e.AuthType == phpInt(authV))
	})
}

func (p *Portal) mEventGet(c *callCtx) (result, *apiError) {
	out := []any{}
	for _, e := range p.events {
		out = append(out, fields("event", e.Event, "handler", e.Handler, "auth_type", strconv.Itoa(e.AuthType), "offline", bit(e.Offline)))
	}
	return okResult(out)
}
