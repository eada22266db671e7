package simulator

import (
	"html/template"
	"net"
	"net/http"
	"net/url"
	"sync"
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
	// SharedListener serves the portal on the simulator's own listener
	// (Options.Addr) as Host:port instead of a listener of its own: all of
	// Bitrix24 on one port. Host must then differ from the OAuth server's
	// name (127.0.0.1), e.g. "localhost", and from other shared portals'.
	SharedListener bool
	// Legacy makes the portal an older one (on-premise, or cloud as
	// recorded in 2024): its frames carry no SERVER_ENDPOINT,
	// APPLICATION_TOKEN or APPLICATION_SCOPE, and the lead tab's
	// PLACEMENT_OPTIONS only the ID (the server template before 2025).
	Legacy bool
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
	// robots, the stages they are put on and their runs (robots.go,
	// robotruns.go); inflight counts the runs being delivered.
	robots      []Robot
	automations []Automation
	runs        []*robotRun
	nextRun     int
	inflight    sync.WaitGroup

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

// AddPortal starts a new portal on its own listener (own host:port), or
// on the simulator's with PortalOptions.SharedListener.
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
	var ln net.Listener
	var addr *portalAddr
	var err error
	if o.SharedListener {
		s.mu.Lock()
		if addr, err = s.sharedPortalAddr(o.Host); err == nil {
			s.hosts[addr.domain] = http.NotFoundHandler() // reserved until the portal is ready
		}
		s.mu.Unlock()
	} else {
		ln, addr, err = listenPortal(o.Host)
	}
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
	if o.Seed {
		p.seed()
	}
	if ln != nil {
		p.srv = &http.Server{Handler: p.frontDoor(addr), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = p.srv.Serve(ln) }()
	}
	s.mu.Lock()
	s.portals = append(s.portals, p)
	if ln == nil {
		s.hosts[addr.domain] = p.frontDoor(addr)
	}
	s.mu.Unlock()
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
