package simulator

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// PortalOptions configures AddPortal.
type PortalOptions struct {
	MemberID string // default: random 32 hex
	// Host is the listen host, default "127.0.0.1". "localhost" gives a
	// different site than 127.0.0.1 (cross-site browser tests); it listens on
	// 127.0.0.1 but names itself localhost.
	Host       string
	Lang       string // portal language, default "en"
	Enterprise bool   // leaky bucket 250 / 5 per s instead of 50 / 2 per s
	Seed       bool   // demo data, see Seed* constants
	// Legacy makes the portal an older one (on-premise, or cloud as
	// recorded in 2024): its frames carry no SERVER_ENDPOINT,
	// APPLICATION_TOKEN or APPLICATION_SCOPE, and the lead tab's
	// PLACEMENT_OPTIONS only the ID (the server template before 2025).
	Legacy bool
}

// User is a portal employee. CanRead/CanEdit are the user's CRM rights (leads
// and contacts); admins may do everything.
type User struct {
	ID             int
	Name, LastName string
	Admin          bool
	CanRead        bool
	CanEdit        bool
}

// Contact is a CRM contact.
type Contact struct {
	ID                               int
	Name, SecondName, LastName, Post string
	CompanyID                        int
}

// Lead is a CRM lead.
type Lead struct {
	ID                              int
	Title, Name, LastName, StatusID string
	AssignedByID                    int
}

// LeadContact is one lead-contact link, as crm.lead.contact.items.get shows it.
type LeadContact struct {
	ContactID, Sort, RoleID int
	Primary                 bool
}

// PlacementLang is one LANG_ALL entry of placement.bind.
type PlacementLang struct {
	Title, Description, GroupName string
}

// PlacementBinding is a handler registered with placement.bind.
type PlacementBinding struct {
	Placement, Handler, Title string
	Description               string
	GroupName                 string
	LangAll                   map[string]PlacementLang
	Options                   map[string]any
	UserID                    int
}

// EventBinding is a handler registered with event.bind.
type EventBinding struct {
	ID             int // event_handler_id sent with deliveries
	Event, Handler string
	AuthType       int
	Offline        bool
}

// Frame is a browser form POST Bitrix24 makes into the app's iframe. Query
// carries DOMAIN, PROTOCOL, LANG, APP_SID (also appended to URL); Form carries
// the body fields.
type Frame struct {
	URL    string
	Query  url.Values
	Form   url.Values
	UserID int
}

// Delivery records one event POST made by Deliver (and so by Uninstall).
type Delivery struct {
	Time    time.Time
	URL     string
	Event   string
	Status  int    // 0 when the request failed
	Error   string // transport error, if any
	Payload url.Values
}

type installState int

const (
	notInstalled installState = iota
	installing                // BeginInstall done, installFinish not yet
	installed
)

// frameKind says what an APP_SID was issued for.
type frameKind int

const (
	frameInstaller frameKind = iota
	framePlacement
)

type frameInfo struct {
	kind      frameKind
	userID    int
	placement string
	options   map[string]string
	handler   string
}

// Portal is one simulated Bitrix24 cloud portal with its own listener.
type Portal struct {
	s        *Simulator
	memberID string
	host     string
	lang     string
	ln       net.Listener
	srv      *http.Server
	mux      *http.ServeMux
	// addr is the portal's current address; MoveTo swaps it while requests
	// run, so it is read atomically (URL, Domain) and never cached.
	addr atomic.Pointer[portalAddr]

	legacy bool

	// Everything below is guarded by s.mu.
	state      installState
	appToken   string
	users      map[int]User
	contacts   map[int]Contact
	leads      map[int]*leadRec
	placements []PlacementBinding
	events     []EventBinding
	nextEvent  int
	frames     map[string]frameInfo
	calls      []Call
	deliveries []Delivery
	faults     []Fault
	bucket     *leakyBucket
	moved      []*http.Server // listeners of the new addresses, see MoveTo
	nextLead   int
	nextCont   int

	// Immutable after AddPortal.
	table map[string]methodDef
	tmpl  map[string]*template.Template
}

type leadRec struct {
	Lead
	contacts []LeadContact
	created  time.Time
	modified time.Time
}

// AddPortal starts a new portal on its own listener (own host:port).
func (s *Simulator) AddPortal(o PortalOptions) (*Portal, error) {
	if o.MemberID == "" {
		o.MemberID = randomHex(16)
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Lang == "" {
		o.Lang = "en"
	}
	ln, addr, err := listenPortal(o.Host)
	if err != nil {
		return nil, err
	}
	p := &Portal{
		s:        s,
		memberID: o.MemberID,
		host:     o.Host,
		lang:     o.Lang,
		legacy:   o.Legacy,
		ln:       ln,
		users:    map[int]User{},
		contacts: map[int]Contact{},
		leads:    map[int]*leadRec{},
		frames:   map[string]frameInfo{},
		nextLead: 1,
		nextCont: 1,
	}
	p.addr.Store(addr)
	burst, drain := 50, 2.0
	if o.Enterprise {
		burst, drain = 250, 5.0
	}
	p.bucket = newLeakyBucket(burst, drain, time.Now)
	p.mux = p.routes()
	p.srv = &http.Server{Handler: p.frontDoor(addr), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.portals = append(s.portals, p)
	if o.Seed {
		p.seedLocked()
	}
	s.mu.Unlock()
	go func() { _ = p.srv.Serve(ln) }()
	s.log("portal %s started at %s", p.memberID, addr.url)
	return p, nil
}

// URL is the portal's base URL, e.g. "http://127.0.0.1:PORT".
func (p *Portal) URL() string { return p.addr.Load().url }

// Domain is host:port, what Bitrix24 sends as DOMAIN.
func (p *Portal) Domain() string { return p.addr.Load().domain }

// MemberID is the portal's stable member_id.
func (p *Portal) MemberID() string { return p.memberID }

// RESTEndpoint is URL()+"/rest/", the client_endpoint.
func (p *Portal) RESTEndpoint() string { return p.URL() + "/rest/" }

// Handler is the portal's mux, for embedding in another server.
func (p *Portal) Handler() http.Handler { return p.mux }

// Lang is the portal's default language.
func (p *Portal) Lang() string { return p.lang }

// AddUser adds or replaces a user; ID 0 picks the next free ID.
func (p *Portal) AddUser(u User) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if u.ID == 0 {
		u.ID = len(p.users) + 1
		for _, ok := p.users[u.ID]; ok; _, ok = p.users[u.ID] {
			u.ID++
		}
	}
	p.users[u.ID] = u
}

// AddContact adds or replaces a contact; ID 0 picks the next free ID.
func (p *Portal) AddContact(c Contact) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.addContactLocked(c)
}

func (p *Portal) addContactLocked(c Contact) int {
	if c.ID == 0 {
		c.ID = p.nextCont
	}
	if c.ID >= p.nextCont {
		p.nextCont = c.ID + 1
	}
	p.contacts[c.ID] = c
	return c.ID
}

// AddLead adds or replaces a lead (keeping existing contact links); ID 0 picks
// the next free ID, an empty StatusID means "NEW".
func (p *Portal) AddLead(l Lead) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.addLeadLocked(l)
}

func (p *Portal) addLeadLocked(l Lead) int {
	if l.ID == 0 {
		l.ID = p.nextLead
	}
	if l.ID >= p.nextLead {
		p.nextLead = l.ID + 1
	}
	if l.StatusID == "" {
		l.StatusID = "NEW"
	}
	now := p.s.nowLocked()
	if rec, ok := p.leads[l.ID]; ok {
		rec.Lead = l
		rec.modified = now
		return l.ID
	}
	p.leads[l.ID] = &leadRec{Lead: l, created: now, modified: now}
	return l.ID
}

// LinkContact links a contact to a lead (or updates the link). Making it
// primary demotes the others; the first link is always primary, as Bitrix24
// keeps exactly one primary contact while any are linked.
func (p *Portal) LinkContact(leadID, contactID, sort int, primary bool) error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	rec, ok := p.leads[leadID]
	if !ok {
		return fmt.Errorf("simulator: no lead %d", leadID)
	}
	if _, ok := p.contacts[contactID]; !ok {
		return fmt.Errorf("simulator: no contact %d", contactID)
	}
	links := make([]LeadContact, 0, len(rec.contacts)+1)
	for _, lc := range rec.contacts {
		if lc.ContactID != contactID {
			links = append(links, lc)
		}
	}
	links = append(links, LeadContact{ContactID: contactID, Sort: sort, Primary: primary})
	rec.contacts = normalizeLinks(links, contactID, primary)
	rec.modified = p.s.nowLocked()
	return nil
}

// normalizeLinks sorts links by SORT and keeps exactly one primary: the one
// asked for, else the first already primary, else the first by sort.
func normalizeLinks(links []LeadContact, preferID int, preferPrimary bool) []LeadContact {
	sort.SliceStable(links, func(i, j int) bool { return links[i].Sort < links[j].Sort })
	primary := -1
	for i, lc := range links {
		if preferPrimary && lc.ContactID == preferID {
			primary = i
		}
	}
	if primary < 0 {
		for i, lc := range links {
			if lc.Primary {
				primary = i
				break
			}
		}
	}
	if primary < 0 && len(links) > 0 {
		primary = 0
	}
	for i := range links {
		links[i].Primary = i == primary
		links[i].RoleID = 0
	}
	return links
}

// LeadContacts returns the lead's contact links ordered by SORT.
func (p *Portal) LeadContacts(leadID int) []LeadContact {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	rec, ok := p.leads[leadID]
	if !ok {
		return nil
	}
	return append([]LeadContact(nil), rec.contacts...)
}

// Lead returns a lead by ID.
func (p *Portal) Lead(leadID int) (Lead, bool) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	rec, ok := p.leads[leadID]
	if !ok {
		return Lead{}, false
	}
	return rec.Lead, true
}

// Contact returns a contact by ID.
func (p *Portal) Contact(id int) (Contact, bool) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	c, ok := p.contacts[id]
	return c, ok
}

// User returns a user by ID.
func (p *Portal) User(id int) (User, bool) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	u, ok := p.users[id]
	return u, ok
}

// appPresentLocked reports whether the app is installed at all (finished or
// not): only then can its tokens work.
func (p *Portal) appPresentLocked() bool { return p.state != notInstalled }

// BeginInstall is the admin clicking Install in the Market: the app becomes
// "installed but not finished" (also when it was installed before), a new
// application_token is generated, user tokens are issued and the installer
// POST is returned. It needs App.InstallURL (an app without an installer has
// nothing to POST to).
func (p *Portal) BeginInstall(userID int) (Frame, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if p.s.app.InstallURL == "" {
		return Frame{}, errors.New("simulator: App.InstallURL is empty")
	}
	if err := p.beginInstallLocked(userID); err != nil {
		return Frame{}, err
	}
	return p.frameLocked(userID, frameInstaller, p.s.app.InstallURL, "DEFAULT", nil, p.lang), nil
}

func (p *Portal) beginInstallLocked(userID int) error {
	u, ok := p.users[userID]
	if !ok {
		return fmt.Errorf("simulator: no user %d", userID)
	}
	if !u.Admin {
		return errors.New("simulator: only an administrator can install apps")
	}
	// SILENT: running the installer again on an installed app (a reinstall
	// or version update flow) is undocumented in detail. It is modelled as a
	// new unfinished install that keeps existing bindings and tokens, so an
	// app must cope with its own stale or duplicate bindings.
	p.appToken = randomHex(16)
	p.state = installing
	if p.s.app.InstallURL != "" {
		// Recorded (server 26.800.0, bitrix-tools/b24-rest-docs PR #370):
		// an install or update drops the ONAPPINSTALL binding, and only
		// apps without an installer page get it back. The event is
		// optional for an app with an installer.
		kept := p.events[:0]
		for _, e := range p.events {
			if e.Event != "ONAPPINSTALL" {
				kept = append(kept, e)
			}
		}
		p.events = kept
	}
	p.s.log("portal %s: install begun by user %d", p.memberID, userID)
	return nil
}

// Install is BeginInstall followed by FinishInstall, for tests that only need
// an installed app. Without App.InstallURL the returned Frame is empty.
func (p *Portal) Install(userID int) (Frame, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if err := p.beginInstallLocked(userID); err != nil {
		return Frame{}, err
	}
	var f Frame
	if p.s.app.InstallURL != "" {
		f = p.frameLocked(userID, frameInstaller, p.s.app.InstallURL, "DEFAULT", nil, p.lang)
	}
	p.state = installed
	p.s.log("portal %s: install finished", p.memberID)
	return f, nil
}

// FinishInstall is what BX24.installFinish() does: INSTALLED becomes true,
// placements become visible and events start being delivered.
func (p *Portal) FinishInstall() {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if p.state == installing {
		p.state = installed
		p.s.log("portal %s: install finished", p.memberID)
	}
}

// Installed reports whether the install was finished.
func (p *Portal) Installed() bool {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.state == installed
}

// InstallStarted reports whether the app is installed, finished or not.
func (p *Portal) InstallStarted() bool {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.state != notInstalled
}

// ApplicationToken is the current application_token ("" when not installed).
func (p *Portal) ApplicationToken() string {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.appToken
}

// Placements returns the bound placement handlers.
func (p *Portal) Placements() []PlacementBinding {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return append([]PlacementBinding(nil), p.placements...)
}

// Events returns the bound event handlers.
func (p *Portal) Events() []EventBinding {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return append([]EventBinding(nil), p.events...)
}

// IssueTokens issues a fresh AUTH_ID/REFRESH_ID pair for a user, as Bitrix24
// does on every frame open. Tokens only work while the app is installed.
func (p *Portal) IssueTokens(userID int) TokenPair {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.s.issueLocked(p, userID)
}

// IssueAuthCode returns an authorization code for the user, as the redirect
// of /oauth/authorize/ would carry it (it lives 30 s of simulated time).
func (p *Portal) IssueAuthCode(userID int) string {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.issueCodeLocked(userID)
}

func (p *Portal) issueCodeLocked(userID int) string {
	code := randomHex(16)
	p.s.codes[code] = &authCode{portal: p, userID: userID, expires: p.s.nowLocked().Add(authCodeTTL)}
	return code
}

// OpenLeadTab builds the POST Bitrix24 sends into the iframe when the user
// opens our CRM_LEAD_DETAIL_TAB on a lead card. It fails when the install is
// not finished, no such placement is bound, or the user cannot see the lead.
func (p *Portal) OpenLeadTab(userID, leadID int, lang string) (Frame, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	b, err := p.leadTabLocked(userID, leadID, 0)
	if err != nil {
		return Frame{}, err
	}
	if lang == "" {
		lang = p.lang
	}
	opts := p.leadTabOptions(leadID)
	return p.frameLocked(userID, framePlacement, b.Handler, b.Placement, opts, lang), nil
}

// leadTabOptions is the lead tab's PLACEMENT_OPTIONS: the ID as a string
// and, recorded from RefererUriExtractor.php, the card's path (JSON-encoded
// by PHP with escaped slashes). Older servers send the ID alone.
func (p *Portal) leadTabOptions(leadID int) map[string]string {
	id := strconv.Itoa(leadID)
	opts := map[string]string{"ID": id}
	if !p.legacy {
		opts["URI"] = "/crm/lead/details/" + id + "/"
	}
	return opts
}

// leadTabLocked finds the n-th CRM_LEAD_DETAIL_TAB binding a user may open.
func (p *Portal) leadTabLocked(userID, leadID, n int) (PlacementBinding, error) {
	// SILENT (docs disagree): placement-bind.md lets admins see widgets of an
	// unfinished install, widgets/index.md and app-info.md hide them from
	// everyone; the strict reading is used.
	if p.state != installed {
		return PlacementBinding{}, errors.New("simulator: app install is not finished; placements are hidden")
	}
	u, ok := p.users[userID]
	if !ok {
		return PlacementBinding{}, fmt.Errorf("simulator: no user %d", userID)
	}
	if _, ok := p.leads[leadID]; !ok {
		return PlacementBinding{}, fmt.Errorf("simulator: no lead %d", leadID)
	}
	if !u.Admin && !u.CanRead {
		return PlacementBinding{}, fmt.Errorf("simulator: user %d cannot read lead %d", userID, leadID)
	}
	tabs := p.bindingsLocked("CRM_LEAD_DETAIL_TAB")
	if n >= len(tabs) {
		return PlacementBinding{}, errors.New("simulator: no CRM_LEAD_DETAIL_TAB placement is bound")
	}
	return tabs[n], nil
}

func (p *Portal) bindingsLocked(placement string) []PlacementBinding {
	var out []PlacementBinding
	for _, b := range p.placements {
		if b.Placement == placement {
			out = append(out, b)
		}
	}
	return out
}

// frameFieldOrder is the order in which the server template app.layout
// writes the frame's body fields (testdata/recorded/frame_lead_tab.json).
var frameFieldOrder = []string{"AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID", "SERVER_ENDPOINT", "APPLICATION_TOKEN",
	"APPLICATION_SCOPE", "member_id", "status", "PLACEMENT", "PLACEMENT_OPTIONS"}

// frameLocked builds a frame POST: the query/body split follows
// api-reference/widgets/index.md ("some parameters come in the handler URL
// query string, the rest in the request body").
func (p *Portal) frameLocked(userID int, kind frameKind, handler, placement string, opts map[string]string, lang string) Frame {
	tok := p.s.issueLocked(p, userID)
	sid := randomHex(16)
	p.frames[sid] = frameInfo{kind: kind, userID: userID, placement: placement, options: opts, handler: handler}
	q := url.Values{}
	q.Set("DOMAIN", p.Domain())
	q.Set("PROTOCOL", "0") // the simulator speaks plain http
	q.Set("LANG", lang)
	q.Set("APP_SID", sid)
	// The body as the server template app.layout builds it
	// (testdata/recorded/frame_*.json); older servers send no
	// SERVER_ENDPOINT, APPLICATION_TOKEN or APPLICATION_SCOPE.
	form := url.Values{}
	form.Set("AUTH_ID", tok.AccessToken)
	form.Set("AUTH_EXPIRES", strconv.Itoa(tok.ExpiresIn))
	form.Set("REFRESH_ID", tok.RefreshToken)
	if !p.legacy {
		form.Set("SERVER_ENDPOINT", p.s.serverEndpoint())
	}
	form.Set("member_id", p.memberID)
	form.Set("status", p.s.app.Status)
	form.Set("PLACEMENT", placement)
	if len(opts) > 0 {
		// Sent only when there are options: the installer has none.
		form.Set("PLACEMENT_OPTIONS", phpJSONString(opts))
	}
	if !p.legacy {
		form.Set("APPLICATION_TOKEN", p.appToken)
		form.Set("APPLICATION_SCOPE", p.s.scopeString())
	}
	sep := "?"
	if strings.Contains(handler, "?") {
		sep = "&"
	}
	return Frame{URL: handler + sep + q.Encode(), Query: q, Form: form, UserID: userID}
}

// OnAppInstallEvent builds the ONAPPINSTALL form (with fresh tokens of the
// given admin), as documented in api-reference/common/events/on-app-install.md.
func (p *Portal) OnAppInstallEvent(userID int) url.Values {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	tok := p.s.issueLocked(p, userID)
	installedFlag := "N"
	if p.state == installed {
		installedFlag = "Y"
	}
	// Shaped like the recording (mesilov/bitrix24-php-sdk#296,
	// testdata/recorded/event_onappinstall.json): no event_handler_id,
	// auth[expires] and auth[user_id] present.
	f := url.Values{}
	f.Set("event", "ONAPPINSTALL")
	f.Set("data[VERSION]", p.s.app.Version)
	f.Set("data[ACTIVE]", "Y")
	f.Set("data[INSTALLED]", installedFlag)
	f.Set("data[LANGUAGE_ID]", p.lang)
	f.Set("ts", strconv.FormatInt(p.s.nowLocked().Unix(), 10))
	p.eventAuthLocked(f)
	f.Set("auth[access_token]", tok.AccessToken)
	f.Set("auth[expires]", strconv.FormatInt(p.s.nowLocked().Add(accessTokenTTL).Unix(), 10))
	f.Set("auth[expires_in]", strconv.Itoa(tok.ExpiresIn))
	f.Set("auth[scope]", p.s.scopeString())
	f.Set("auth[user_id]", strconv.Itoa(userID))
	f.Set("auth[status]", p.s.app.Status)
	f.Set("auth[refresh_token]", tok.RefreshToken)
	return f
}

// eventAuthLocked adds the auth[...] keys every event carries.
func (p *Portal) eventAuthLocked(f url.Values) {
	f.Set("auth[domain]", p.Domain())
	f.Set("auth[server_endpoint]", p.s.serverEndpoint())
	f.Set("auth[client_endpoint]", p.RESTEndpoint())
	f.Set("auth[member_id]", p.memberID)
	f.Set("auth[application_token]", p.appToken)
}

// Uninstall removes the app: all its tokens are revoked, placements and event
// bindings removed, then ONAPPUNINSTALL is POSTed (form-encoded) to the handler
// bound for it, if any. It returns the delivery error or non-2xx status.
func (p *Portal) Uninstall(ctx context.Context, clean bool) error {
	p.s.mu.Lock()
	if p.state == notInstalled {
		p.s.mu.Unlock()
		return errors.New("simulator: app is not installed")
	}
	// Events are only delivered to finished installs (installation-finish.md),
	// SILENT: so uninstalling an unfinished install delivers nothing.
	deliver := p.state == installed
	var handlers []EventBinding
	for _, e := range p.events {
		if e.Event == "ONAPPUNINSTALL" {
			handlers = append(handlers, e)
		}
	}
	form := url.Values{}
	form.Set("event", "ONAPPUNINSTALL")
	form.Set("data[LANGUAGE_ID]", p.lang)
	if clean {
		form.Set("data[CLEAN]", "1")
	} else {
		form.Set("data[CLEAN]", "0")
	}
	form.Set("ts", strconv.FormatInt(p.s.nowLocked().Unix(), 10))
	p.eventAuthLocked(form)
	p.s.revokePortalLocked(p)
	p.placements = nil
	p.events = nil
	p.frames = map[string]frameInfo{}
	p.state = notInstalled
	p.appToken = ""
	p.s.mu.Unlock()
	p.s.log("portal %s: app uninstalled (clean=%v)", p.memberID, clean)
	if !deliver {
		return nil
	}
	var errs []error
	for _, h := range handlers {
		f := cloneValues(form)
		f.Set("event_handler_id", strconv.Itoa(h.ID))
		resp, err := p.Deliver(ctx, h.Handler, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			errs = append(errs, fmt.Errorf("simulator: ONAPPUNINSTALL handler answered %d", resp.StatusCode))
		}
	}
	return errors.Join(errs...)
}

// Fire delivers an event to every handler bound for it, with the common
// auth[...] keys plus data (keys without a prefix get "data[...]"). Like
// Bitrix24 it delivers nothing until the install is finished.
func (p *Portal) Fire(ctx context.Context, event string, data url.Values) error {
	event = strings.ToUpper(event)
	p.s.mu.Lock()
	if p.state != installed {
		p.s.mu.Unlock()
		return nil
	}
	var handlers []EventBinding
	for _, e := range p.events {
		if e.Event == event {
			handlers = append(handlers, e)
		}
	}
	form := url.Values{}
	form.Set("event", event)
	for k, vs := range data {
		if !strings.HasPrefix(k, "data[") {
			// FIELDS[ID] becomes data[FIELDS][ID].
			base, rest, _ := strings.Cut(k, "[")
			if rest != "" {
				rest = "[" + rest
			}
			k = "data[" + base + "]" + rest
		}
		form[k] = vs
	}
	form.Set("ts", strconv.FormatInt(p.s.nowLocked().Unix(), 10))
	p.eventAuthLocked(form)
	p.s.mu.Unlock()
	var errs []error
	for _, h := range handlers {
		f := cloneValues(form)
		f.Set("event_handler_id", strconv.Itoa(h.ID))
		resp, err := p.Deliver(ctx, h.Handler, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
	}
	return errors.Join(errs...)
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Deliver POSTs an event form to a handler like Bitrix24's queue does
// (application/x-www-form-urlencoded, no redirects followed, no retries). The
// caller closes the response body.
func (p *Portal) Deliver(ctx context.Context, handlerURL string, form url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, handlerURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Bitrix24 Webhook Engine")
	client := &http.Client{
		Timeout: 30 * time.Second,
		// SILENT: whether the queue follows redirects is undocumented; not
		// following is the strict choice (a moved handler loses the event).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	d := Delivery{Time: p.s.Now(), URL: handlerURL, Event: form.Get("event"), Payload: cloneValues(form)}
	if err != nil {
		d.Error = err.Error()
	} else {
		d.Status = resp.StatusCode
	}
	p.s.mu.Lock()
	p.deliveries = append(p.deliveries, d)
	p.s.mu.Unlock()
	p.s.log("portal %s: delivered %s to %s: status %d err %v", p.memberID, d.Event, handlerURL, d.Status, err)
	return resp, err
}

// Deliveries returns every event POST made so far.
func (p *Portal) Deliveries() []Delivery {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return append([]Delivery(nil), p.deliveries...)
}

// SetRateLimit changes the leaky bucket: burst requests at once, drained at
// drainPerSec. burst <= 0 disables rate limiting (load tests of our own code).
func (p *Portal) SetRateLimit(burst int, drainPerSec float64) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.bucket.configure(burst, drainPerSec)
}
