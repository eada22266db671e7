package simulator

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

func assetText(name string) string {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic("simulator: missing asset " + name)
	}
	return string(b)
}

// parseTemplates parses each server-rendered page together with the layout.
func parseTemplates() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"home", "install", "lead", "contact", "message", "app", "leadlist"} {
		out[name] = template.Must(template.ParseFS(assets, "assets/templates/layout.html", "assets/templates/"+name+".html"))
	}
	return out
}

func (p *Portal) routes() *http.ServeMux {
	p.table = p.buildMethods()
	p.tmpl = parseTemplates()
	mux := http.NewServeMux()
	mux.HandleFunc("/rest/", p.serveREST)
	mux.HandleFunc("GET /{$}", p.page(p.home))
	mux.HandleFunc("GET /marketplace/install/{$}", p.page(p.installer))
	mux.HandleFunc("GET /crm/lead/details/{id}/{$}", p.page(p.leadCard))
	mux.HandleFunc("GET "+leadListPath+"{$}", p.page(p.leadList))
	mux.HandleFunc("GET /crm/contact/details/{id}/{$}", p.page(p.contactCard))
	mux.HandleFunc("GET /marketplace/app/{$}", p.page(p.appPage))
	mux.HandleFunc("GET /oauth/authorize/{$}", p.page(p.authorize))
	mux.HandleFunc("GET /sim/static/{file}", p.static)
	mux.HandleFunc("GET /sim/api/lead/{id}/contacts", p.apiLeadContacts)
	// State-changing simulator endpoints are only for the portal's own pages.
	cop := http.NewCrossOriginProtection()
	mux.Handle("POST /sim/uninstall", cop.Handler(p.page(p.uninstall)))
	mux.Handle("POST /sim/api/install-finish", cop.Handler(http.HandlerFunc(p.apiInstallFinish)))
	mux.Handle("POST /sim/api/auth", cop.Handler(http.HandlerFunc(p.apiAuth)))
	mux.Handle("POST /sim/lead/{id}/stage", cop.Handler(p.page(p.moveStage)))
	mux.Handle("POST /sim/automation", cop.Handler(p.page(p.addAutomation)))
	return mux
}

// pageBase is what the layout needs.
type pageBase struct {
	Title      string
	PortalName string
	Domain     string
	User       User
	Users      []userLink // the top bar's user switch
	Lang       string     // the interface language, a LANG code
	Langs      []langOption
	Keep       []formField // the query the language picker keeps
	Status     string
	Path       string
	AppMenu    string // the app's left-menu item; empty until it is installed
}

type homePage struct {
	pageBase
	State string // "none", "installing", "installed"
	Leads []leadRow
}

type leadRow struct {
	ID       int
	Title    string
	Contacts int
}

type framePage struct {
	pageBase
	FrameName   string
	FrameURL    string
	FrameTitle  string // the iframe's accessible name
	Fields      []formField
	FrameData   template.JS // JSON for <script type="application/json">
	Error       string
	LeadID      int
	Lead        Lead
	Contacts    []contactRow
	Tabs        []tabRow
	ActiveTab   string
	InstallDone bool
	Automation  automationView
}

type formField struct{ Name, Value string }

type contactRow struct {
	ID      int    `json:"id"`
	Name    string `json:"name"`
	Primary bool   `json:"primary"`
}

type tabRow struct {
	Key, Title, Href string
	Active           bool
}

type contactPage struct {
	pageBase
	Contact Contact
	Leads   []leadRow
}

type messagePage struct {
	pageBase
	Heading, Text string
	OK            bool
}

// pageFunc renders one page: template name, data, status.
type pageFunc func(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int)

// page wraps a pageFunc with the current user, security headers and
// buffered rendering.
func (p *Portal) page(fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		base := p.base(w, r)
		name, data, status := fn(w, r, base)
		if name == "" {
			return // fn answered itself (redirect)
		}
		var buf bytes.Buffer
		if err := p.tmpl[name].ExecuteTemplate(&buf, "layout", data); err != nil {
			p.s.log("portal %s: template %s: %v", p.memberID, name, err)
			http.Error(w, "template error", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		// Scripts only from our own origin (no inline); app frames may be any
		// http(s) origin, and the form POST into them too.
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src http: https:; form-action 'self' http: https:; frame-ancestors 'self'; base-uri 'none'; object-src 'none'")
		w.WriteHeader(status)
		_, _ = w.Write(buf.Bytes())
	}
}

func (p *Portal) userCookie() string { return "b24sim_user_" + p.memberID[:min(8, len(p.memberID))] }

// currentUser picks the user from ?user=ID (remembered in a cookie), then the
// cookie, then user 1. Cookies ignore ports, so the name is per portal.
func (p *Portal) currentUser(w http.ResponseWriter, r *http.Request) int {
	if q := r.URL.Query().Get("user"); q != "" {
		if id, err := strconv.Atoi(q); err == nil && id > 0 {
			// #nosec G124 -- the simulated portal's user switch, served over plain http on loopback (tests, demo): Secure would drop it.
			http.SetCookie(w, &http.Cookie{Name: p.userCookie(), Value: strconv.Itoa(id), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
			return id
		}
	}
	if c, err := r.Cookie(p.userCookie()); err == nil {
		if id, err := strconv.Atoi(c.Value); err == nil && id > 0 {
			return id
		}
	}
	return 1
}

func (p *Portal) base(w http.ResponseWriter, r *http.Request) pageBase {
	uid := p.currentUser(w, r)
	lang := p.currentLang(w, r)
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	u, ok := p.users[uid]
	if !ok {
		u = User{ID: uid, Name: "Unknown user", LastName: strconv.Itoa(uid)}
	}
	users := make([]User, 0, len(p.users))
	for _, id := range sortedKeys(p.users) {
		users = append(users, p.users[id])
	}
	links := userLinks(r, users, uid)
	status := map[installState]string{notInstalled: "App not installed", installing: "App installed, not finished", installed: "App installed"}[p.state]
	return pageBase{PortalName: "Simulated Bitrix24 · " + p.Domain(), Domain: p.Domain(), User: u, Users: links, Status: status, Path: r.URL.Path,
		Lang: lang, Langs: langOptions(lang), Keep: keptFields(r), AppMenu: p.appMenuLocked()}
}

func (p *Portal) home(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int) {
	base.Title = "Home"
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	pg := homePage{pageBase: base, State: map[installState]string{notInstalled: "none", installing: "installing", installed: "installed"}[p.state]}
	for _, id := range sortedKeys(p.leads) {
		rec := p.leads[id]
		pg.Leads = append(pg.Leads, leadRow{ID: id, Title: rec.Title, Contacts: len(rec.contacts)})
	}
	return "home", pg, http.StatusOK
}

func (p *Portal) message(base pageBase, status int, heading, text string, okFlag bool) (string, any, int) {
	base.Title = heading
	return "message", messagePage{pageBase: base, Heading: heading, Text: text, OK: okFlag}, status
}

// frameFields turns a Frame into template data for the auto-submitted form.
func (p *Portal) frameFields(pg *framePage, f Frame, kind, placement string, opts map[string]string, leadID int) {
	pg.FrameName = f.Query.Get("DOMAIN") + "|" + f.Query.Get("PROTOCOL") + "|" + f.Query.Get("APP_SID")
	pg.FrameURL = f.URL
	pg.FrameTitle = "Application"
	if kind == "installer" {
		pg.FrameTitle = "Application installer"
	}
	for _, k := range frameFieldOrder {
		if v, ok := f.Form[k]; ok {
			pg.Fields = append(pg.Fields, formField{k, v[0]})
		}
	}
	origin := ""
	if u, err := url.Parse(f.URL); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	u, _ := p.User(f.UserID)
	data := fields("sid", f.Query.Get("APP_SID"), "handlerOrigin", origin, "kind", kind, "placement", placement,
		"options", opts, "lang", f.Query.Get("LANG"), "domain", p.Domain(), "protocol", f.Query.Get("PROTOCOL"),
		"memberId", p.memberID, "isAdmin", u.Admin, "leadId", leadID,
		"auth", p.authData(f.Form.Get("AUTH_ID"), f.Form.Get("REFRESH_ID"), int(accessTokenTTL/time.Second)))
	// json.Marshal escapes <, > and & as \u003c..., so nothing in the data can
	// end or confuse the <script type="application/json"> block.
	b, _ := json.Marshal(data)
	pg.FrameData = template.JS(b) // #nosec G203 -- json.Marshal output, escaped as said above
}

func (p *Portal) installer(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int) {
	base.Title = "Install application"
	f, err := p.beginInstall(base.User.ID, base.Lang)
	if err != nil {
		return p.message(base, http.StatusConflict, "Cannot install the app", strings.TrimPrefix(err.Error(), "simulator: "), false)
	}
	pg := framePage{pageBase: base}
	p.frameFields(&pg, f, "installer", "DEFAULT", nil, 0)
	return "install", pg, http.StatusOK
}

func (p *Portal) leadCard(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	p.s.mu.Lock()
	rec, found := p.leads[id]
	var lead Lead
	var rows []contactRow
	if found {
		lead = rec.Lead
		rows = p.contactRowsLocked(rec)
	}
	installedNow := p.state == installed
	tabs := p.bindingsLocked("CRM_LEAD_DETAIL_TAB")
	auto := p.automationLocked(id, base.Lang)
	p.s.mu.Unlock()
	if !found {
		return p.message(base, http.StatusNotFound, "Lead not found", "There is no lead with ID "+r.PathValue("id")+".", false)
	}
	if !base.User.canRead() {
		return p.message(base, http.StatusForbidden, "Access denied", "You may not view this lead.", false)
	}
	lang := base.Lang
	base.Title = lead.Title
	pg := framePage{pageBase: base, LeadID: id, Lead: lead, Contacts: rows, InstallDone: installedNow, Automation: auto}
	active := r.URL.Query().Get("tab")
	self := "/crm/lead/details/" + strconv.Itoa(id) + "/"
	pg.Tabs = append(pg.Tabs, tabRow{Key: "general", Title: "General", Href: self})
	if installedNow {
		for i, b := range tabs {
			key := "app"
			if i > 0 {
				key = "app-" + strconv.Itoa(i)
			}
			pg.Tabs = append(pg.Tabs, tabRow{Key: key, Title: tabTitle(b, lang), Href: self + "?tab=" + key})
		}
	}
	if !slices.ContainsFunc(pg.Tabs, func(t tabRow) bool { return t.Key == active }) {
		active = "general"
	}
	pg.ActiveTab = active
	for i := range pg.Tabs {
		pg.Tabs[i].Active = pg.Tabs[i].Key == active
	}
	if active != "general" {
		n := 0
		if rest, cut := strings.CutPrefix(active, "app-"); cut {
			n, _ = strconv.Atoi(rest)
		}
		if f, err := p.openLead(leadTab, base.User.ID, id, n, lang); err != nil {
			pg.Error = strings.TrimPrefix(err.Error(), "simulator: ")
		} else {
			p.frameFields(&pg, f, "placement", leadTab.code, leadTab.options(p, id), id)
		}
	}
	return "lead", pg, http.StatusOK
}

// tabTitle is the title in the user's language, else TITLE, else English.
func tabTitle(b PlacementBinding, lang string) string {
	if l, ok := b.LangAll[lang]; ok && l.Title != "" {
		return l.Title
	}
	if b.Title != "" {
		return b.Title
	}
	if l, ok := b.LangAll["en"]; ok && l.Title != "" {
		return l.Title
	}
	return "Application"
}

func (p *Portal) contactRowsLocked(rec *leadRec) []contactRow {
	rows := []contactRow{}
	for _, lc := range rec.contacts {
		c := p.contacts[lc.ContactID]
		rows = append(rows, contactRow{ID: c.ID, Name: strings.TrimSpace(c.Name + " " + c.LastName), Primary: lc.Primary})
	}
	return rows
}

func (p *Portal) contactCard(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	p.s.mu.Lock()
	c, found := p.contacts[id]
	var leads []leadRow
	for _, lid := range sortedKeys(p.leads) {
		for _, lc := range p.leads[lid].contacts {
			if lc.ContactID == id {
				leads = append(leads, leadRow{ID: lid, Title: p.leads[lid].Title})
			}
		}
	}
	p.s.mu.Unlock()
	if !found {
		return p.message(base, http.StatusNotFound, "Contact not found", "There is no contact with ID "+r.PathValue("id")+".", false)
	}
	if !base.User.canRead() {
		return p.message(base, http.StatusForbidden, "Access denied", "You may not view this contact.", false)
	}
	base.Title = strings.TrimSpace(c.Name + " " + c.LastName)
	return "contact", contactPage{pageBase: base, Contact: c, Leads: leads}, http.StatusOK
}
