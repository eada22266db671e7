package simulator

import (
	"cmp"
	"fmt"
	"sort"
	"time"
)

// User is a portal employee. CanRead/CanEdit are the user's CRM rights (leads
// and contacts); admins may do everything. TimeZone is the zone the user
// chose in the profile (an IANA name), "" when it is automatic; then
// TimeZoneOffset is the offset from UTC, in seconds, the user's browser
// reported.
type User struct {
	ID             int
	Name, LastName string
	Admin          bool
	CanRead        bool
	CanEdit        bool
	TimeZone       string
	TimeZoneOffset int
}

// Contact is a CRM contact.
type Contact struct {
	ID                               int
	Name, SecondName, LastName, Post string
	CompanyID                        int
}

// Lead is a CRM lead. SourceID is its source ("" means "WEB"); Created is
// its DATE_CREATE (zero means now, by the simulated clock).
type Lead struct {
	ID                              int
	Title, Name, LastName, StatusID string
	AssignedByID                    int
	SourceID                        string
	Created                         time.Time
}

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
	c.ID = claimID(c.ID, &p.nextCont)
	p.contacts[c.ID] = c
}

// claimID picks the next free ID for 0 and keeps next past every ID used.
func claimID(id int, next *int) int {
	if id == 0 {
		id = *next
	}
	*next = max(*next, id+1)
	return id
}

// AddLead adds or replaces a lead (keeping existing contact links); ID 0 picks
// the next free ID, an empty StatusID means "NEW".
func (p *Portal) AddLead(l Lead) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	l.ID = claimID(l.ID, &p.nextLead)
	l.StatusID = cmp.Or(l.StatusID, "NEW")
	l.SourceID = cmp.Or(l.SourceID, "WEB")
	now := p.s.nowLocked()
	if rec, ok := p.leads[l.ID]; ok {
		if l.Created.IsZero() {
			l.Created = rec.created
		}
		rec.Lead, rec.created, rec.modified = l, l.Created, now
		return
	}
	created := l.Created
	if created.IsZero() {
		created = now
	}
	l.Created = created
	modified := now
	if created.After(now) {
		modified = created
	}
	p.leads[l.ID] = &leadRec{Lead: l, created: created, modified: modified}
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
	if rec, ok := p.leads[leadID]; ok {
		return append([]LeadContact(nil), rec.contacts...)
	}
	return nil
}

// Lead returns a lead by ID.
func (p *Portal) Lead(leadID int) (Lead, bool) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if rec, ok := p.leads[leadID]; ok {
		return rec.Lead, true
	}
	return Lead{}, false
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
