package graphsim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The generator derives every generated user from (seed, index) alone, so a
// user's attributes are computed when needed instead of being held in memory:
// a 200,000-user tenant costs one small record per user until a user is
// changed. Each attribute family draws from its own random stream so adding
// an attribute never reshuffles the others.

// rng is splitmix64: tiny, fast and good enough for test data.
type rng struct{ s uint64 }

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Streams keep the draws for different purposes independent.
const (
	streamUserID uint64 = iota + 1
	streamUser
	streamGroupID
	streamGroup
	streamNewID
	streamFault
	streamCity
	streamPhoto
)

func newRNG(seed int64, stream, i uint64) *rng {
	return &rng{s: mix64(uint64(seed)*0x9e3779b97f4a7c15 ^ mix64(stream<<40^i))}
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

func (r *rng) intn(n int) int {
	if n <= 0 {
		return 0
	}
	return int(r.next() % uint64(n))
}

func (r *rng) chance(p float64) bool { return float64(r.next()>>11)/(1<<53) < p }

func (r *rng) guid() string {
	var b [16]byte
	a, c := r.next(), r.next()
	for i := 0; i < 8; i++ {
		b[i] = byte(a >> (8 * i))
		b[8+i] = byte(c >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// name is a name part as displayed and as folded to ASCII for mail
// addresses.
type name struct{ text, ascii string }

var givenNames = []name{
	{"James", "james"}, {"Mary", "mary"}, {"Anna", "anna"}, {"Lukas", "lukas"},
	{"Sophie", "sophie"}, {"Mohammed", "mohammed"}, {"Fatima", "fatima"}, {"Olivia", "olivia"},
	{"Noah", "noah"}, {"Emma", "emma"}, {"Liam", "liam"}, {"Mia", "mia"},
	{"José", "jose"}, {"Zoë", "zoe"}, {"Renée", "renee"}, {"André", "andre"},
	{"Björn", "bjorn"}, {"Søren", "soren"}, {"Øystein", "oystein"}, {"Łukasz", "lukasz"},
	{"Małgorzata", "malgorzata"}, {"Zoltán", "zoltan"}, {"Ágnes", "agnes"}, {"Chloé", "chloe"},
	{"François", "francois"}, {"Jürgen", "jurgen"}, {"Çağla", "cagla"}, {"Siobhán", "siobhan"},
	{"Priya", "priya"}, {"Arjun", "arjun"}, {"Ana", "ana"}, {"João", "joao"},
	{"Ingrid", "ingrid"}, {"Mateo", "mateo"}, {"Aisha", "aisha"}, {"David", "david"},
}

var surnames = []name{
	{"Smith", "smith"}, {"Johnson", "johnson"}, {"Müller", "muller"}, {"Schmidt", "schmidt"},
	{"García", "garcia"}, {"Martínez", "martinez"}, {"Dubois", "dubois"}, {"Lefèvre", "lefevre"},
	{"Rossi", "rossi"}, {"Nowak", "nowak"}, {"Kowalski", "kowalski"}, {"Wójcik", "wojcik"},
	{"Hansen", "hansen"}, {"Sørensen", "sorensen"}, {"Øberg", "oberg"}, {"Andersson", "andersson"},
	{"Nieminen", "nieminen"}, {"Dvořák", "dvorak"}, {"Kovács", "kovacs"}, {"Yılmaz", "yilmaz"},
	{"O'Brien", "obrien"}, {"Murphy", "murphy"}, {"Nguyễn", "nguyen"}, {"Singh", "singh"},
	{"Patel", "patel"}, {"Silva", "silva"}, {"Costa", "costa"}, {"Smith-Jones", "smith-jones"},
	{"Łęcki", "lecki"}, {"Brown", "brown"}, {"Taylor", "taylor"}, {"Fischer", "fischer"},
}

// cjkNames are written family name first, as they are displayed.
var cjkNames = []struct{ family, given name }{
	{name{"山田", "yamada"}, name{"太郎", "taro"}},
	{name{"佐藤", "sato"}, name{"美咲", "misaki"}},
	{name{"鈴木", "suzuki"}, name{"健", "ken"}},
	{name{"日本", "hinomoto"}, name{"花子", "hanako"}},
	{name{"王", "wang"}, name{"伟", "wei"}},
	{name{"李", "li"}, name{"娜", "na"}},
	{name{"김", "kim"}, name{"민준", "minjun"}},
	{name{"陳", "chen"}, name{"美玲", "meiling"}},
}

type department struct {
	name   string
	titles []string
}

var departments = []department{
	{"Finance", []string{"Accountant", "Senior Accountant", "Financial Analyst", "Controller", "Payroll Specialist"}},
	{"Engineering", []string{"Software Engineer", "Senior Software Engineer", "Principal Engineer", "QA Engineer", "DevOps Engineer"}},
	{"Sales", []string{"Account Executive", "Sales Representative", "Senior Account Executive", "Sales Engineer"}},
	{"HR", []string{"HR Business Partner", "Recruiter", "HR Generalist", "Talent Acquisition Specialist"}},
	{"Marketing", []string{"Marketing Specialist", "Content Strategist", "Brand Manager", "SEO Analyst"}},
	{"Legal", []string{"Legal Counsel", "Paralegal", "Compliance Officer"}},
	{"Operations", []string{"Operations Analyst", "Logistics Coordinator", "Facilities Coordinator"}},
	{"IT", []string{"Systems Administrator", "Service Desk Analyst", "Network Engineer", "Security Analyst"}},
	{"Customer Support", []string{"Support Agent", "Senior Support Agent", "Customer Success Manager"}},
	{"Research & Development", []string{"Research Scientist", "Lab Technician", "Data Scientist"}},
}

type city struct {
	name, code, country, usage, lang, phone string
}

var cities = []city{
	{"Berlin", "BER", "Germany", "DE", "de-DE", "+49 30"},
	{"München", "MUC", "Germany", "DE", "de-DE", "+49 89"},
	{"Zürich", "ZRH", "Switzerland", "CH", "de-CH", "+41 44"},
	{"Kraków", "KRK", "Poland", "PL", "pl-PL", "+48 12"},
	{"Oslo", "OSL", "Norway", "NO", "nb-NO", "+47 22"},
	{"Paris", "PAR", "France", "FR", "fr-FR", "+33 1"},
	{"London", "LON", "United Kingdom", "GB", "en-GB", "+44 20"},
	{"New York", "NYC", "United States", "US", "en-US", "+1 212"},
	{"Seattle", "SEA", "United States", "US", "en-US", "+1 206"},
	{"São Paulo", "SAO", "Brazil", "BR", "pt-BR", "+55 11"},
	{"Tokyo", "TYO", "Japan", "JP", "ja-JP", "+81 3"},
}

var guestDomains = []string{"fabrikam.com", "northwindtraders.com", "adatum.com", "tailspintoys.com"}

// The org chart: user 0 is the chief executive, users 1..len(departments)
// head one department each, and below them every manager has up to
// reportsPerManager reports. Guests sit outside the chart.
const reportsPerManager = 7

// Index rules for the tenant's rough edges. They are residues of the index so
// that small tenants get a few of each too.
func isGuest(i int) bool            { return i%40 == 17 }
func isDisabled(i int) bool         { return i%25 == 9 }
func hasNoMail(i int) bool          { return i%30 == 11 }
func sharesMailWithPrev(i int) bool { return i%500 == 13 }

type generator struct {
	seed   int64
	n      int
	domain string
	ids    []string
	dept   []int8 // department index per user, -1 for the executive and guests
}

func newGenerator(seed int64, n int, domain string) *generator {
	g := &generator{seed: seed, n: n, domain: domain, ids: make([]string, n), dept: make([]int8, n)}
	for i := 0; i < n; i++ {
		g.ids[i] = newRNG(seed, streamUserID, uint64(i)).guid()
		switch {
		case i == 0 || isGuest(i):
			g.dept[i] = -1
		case i <= len(departments):
			g.dept[i] = int8(i - 1)
		default:
			g.dept[i] = g.dept[g.managerIndex(i)]
		}
	}
	return g
}

// chartParent is i's position in the chart, ignoring guests.
func chartParent(i int) int {
	if i <= len(departments) {
		return 0
	}
	return (i-len(departments)-1)/reportsPerManager + 1
}

// managerIndex is the index of i's manager, or -1 for none.
func (g *generator) managerIndex(i int) int {
	if i == 0 || isGuest(i) {
		return -1
	}
	m := chartParent(i)
	for isGuest(m) {
		m = chartParent(m)
	}
	return m
}

// hasReports reports whether someone in the chart reports to i.
func (g *generator) hasReports(i int) bool {
	if isGuest(i) {
		return false
	}
	if i == 0 {
		return g.n > 1
	}
	first := len(departments) + 1 + (i-1)*reportsPerManager
	for c := first; c < first+reportsPerManager && c < g.n; c++ {
		if !isGuest(c) {
			return true
		}
	}
	// A guest's reports are re-parented to the guest's own manager, so a
	// manager above a guest may have grandchildren as reports: close enough
	// not to matter for titles.
	return false
}

func (g *generator) depth(i int) int {
	d := 0
	for i > 0 {
		i = chartParent(i)
		d++
	}
	return d
}

// identity is the part of a user other users' attributes depend on.
type identity struct {
	given, surname name
	display        string
	local          string // mail local part
	city           int
}

func (g *generator) identity(i int) identity {
	r := newRNG(g.seed, streamUser, uint64(i))
	var id identity
	if r.chance(0.08) {
		p := cjkNames[r.intn(len(cjkNames))]
		id.given, id.surname = p.given, p.family
		id.display = p.family.text + " " + p.given.text
	} else {
		id.given = givenNames[r.intn(len(givenNames))]
		id.surname = surnames[r.intn(len(surnames))]
		id.display = id.given.text + " " + id.surname.text
	}
	id.local = id.given.ascii + "." + id.surname.ascii + strconv.Itoa(i)
	id.city = newRNG(g.seed, streamCity, uint64(i)).intn(len(cities))
	return id
}

// mail is user i's mail address, "" when it has none.
func (g *generator) mail(i int) string {
	if i < 0 || i >= g.n || hasNoMail(i) {
		return ""
	}
	id := g.identity(i)
	if isGuest(i) {
		return id.local + "@" + guestDomains[i%len(guestDomains)]
	}
	if sharesMailWithPrev(i) && i > 0 && !isGuest(i-1) {
		if prev := g.mail(i - 1); prev != "" {
			// Same mailbox address, differently cased: the classic
			// duplicate a directory sync must detect case-insensitively.
			return strings.ToUpper(prev[:1]) + prev[1:strings.IndexByte(prev, '@')] + "@" + strings.ToUpper(g.domain)
		}
	}
	return id.local + "@" + g.domain
}

var epoch = time.Date(2016, 1, 4, 9, 0, 0, 0, time.UTC)

// user computes generated user i's attributes (Graph property names).
func (g *generator) user(i int) map[string]any {
	id := g.identity(i)
	r := newRNG(g.seed, streamUser, uint64(i)^0x5bd1e995<<20)
	c := cities[id.city]
	a := make(map[string]any, 24)
	a["displayName"] = id.display
	a["givenName"] = id.given.text
	a["surname"] = id.surname.text
	a["accountEnabled"] = !isDisabled(i)
	a["createdDateTime"] = epoch.Add(time.Duration(i) * 97 * time.Minute).Format(time.RFC3339)
	a["businessPhones"] = []string{}
	a["otherMails"] = []string{}
	mail := g.mail(i)
	if isGuest(i) {
		guestDomain := guestDomains[i%len(guestDomains)]
		ext := id.local + "_" + guestDomain
		a["userType"] = "Guest"
		a["userPrincipalName"] = ext + "#EXT#@" + g.domain
		a["mailNickname"] = ext + "#EXT#"
		a["companyName"] = strings.TrimSuffix(guestDomain, ".com")
		a["externalUserState"] = "Accepted"
		if mail != "" {
			a["mail"] = mail
			a["otherMails"] = []string{mail}
		}
		return a
	}
	a["userType"] = "Member"
	a["userPrincipalName"] = id.local + "@" + g.domain
	a["mailNickname"] = id.local
	if mail != "" {
		a["mail"] = mail
	}
	a["companyName"] = "Contoso Ltd."
	a["employeeId"] = strconv.Itoa(100000 + i)
	if r.chance(0.1) {
		a["employeeType"] = "Contractor"
	} else {
		a["employeeType"] = "Employee"
	}
	a["city"] = c.name
	a["country"] = c.country
	a["usageLocation"] = c.usage
	a["preferredLanguage"] = c.lang
	a["officeLocation"] = fmt.Sprintf("%s %d.%02d", c.code, 1+r.intn(6), 1+r.intn(40))
	if r.chance(0.8) {
		a["businessPhones"] = []string{fmt.Sprintf("%s %03d %04d", c.phone, r.intn(1000), r.intn(10000))}
	}
	if r.chance(0.65) {
		a["mobilePhone"] = fmt.Sprintf("%s %03d %04d", c.phone, 100+r.intn(900), r.intn(10000))
	}
	if r.chance(0.05) {
		a["otherMails"] = []string{id.given.ascii + "." + id.surname.ascii + "@example.org"}
	}
	switch d := g.dept[i]; {
	case i == 0:
		a["department"] = "Executive"
		a["jobTitle"] = "Chief Executive Officer"
	case d >= 0:
		dep := departments[d]
		a["department"] = dep.name
		a["jobTitle"] = g.title(i, dep, r)
	}
	if m := g.managerIndex(i); m >= 0 {
		a["manager"] = g.ids[m]
	}
	return a
}

func (g *generator) title(i int, dep department, r *rng) string {
	if !g.hasReports(i) {
		return dep.titles[r.intn(len(dep.titles))]
	}
	switch g.depth(i) {
	case 1:
		return "Head of " + dep.name
	case 2:
		return "Director"
	case 3:
		return "Senior Manager"
	case 4:
		return "Manager"
	default:
		return "Team Lead"
	}
}

// hasPhoto reports whether generated user i starts with a profile photo.
func (g *generator) hasPhoto(i int) bool {
	return !isGuest(i) && newRNG(g.seed, streamPhoto, uint64(i)).chance(0.4)
}

// groupSpec is a generated group before it is stored.
type groupSpec struct {
	name, description string
	users             []int // generated user indexes
	nested            []int // indexes of other specs
}

// groups plans the generated groups: count < 0 none, 0 the default set,
// otherwise exactly count (the default set first, then teams).
func (g *generator) groups(count int) []groupSpec {
	if count < 0 || (count == 0 && g.n == 0) {
		return nil
	}
	var specs []groupSpec
	all := groupSpec{name: "All Employees", description: "Every department, through nested department groups"}
	specs = append(specs, all)
	deptFirst := len(specs)
	for d, dep := range departments {
		spec := groupSpec{name: "Department - " + dep.name, description: "Members of the " + dep.name + " department"}
		for i := 0; i < g.n; i++ {
			if int(g.dept[i]) == d {
				spec.users = append(spec.users, i)
			}
		}
		specs = append(specs, spec)
		specs[0].nested = append(specs[0].nested, deptFirst+d)
	}
	managers := groupSpec{name: "People Managers", description: "Everyone with direct reports"}
	guests := groupSpec{name: "External Guests", description: "Guest accounts from partner organizations"}
	office := groupSpec{name: "Berlin Office", description: "Everyone based in Berlin"}
	for i := 0; i < g.n; i++ {
		if g.hasReports(i) {
			managers.users = append(managers.users, i)
		}
		if isGuest(i) {
			guests.users = append(guests.users, i)
		} else if i > 0 && newRNG(g.seed, streamCity, uint64(i)).intn(len(cities)) == 0 {
			office.users = append(office.users, i)
		}
	}
	specs = append(specs, managers, guests)
	project := groupSpec{name: "Project Phoenix", description: "Cross-functional project team, includes the Legal department"}
	r := newRNG(g.seed, streamGroup, 0)
	project.users = g.sample(r, min(300, max(3, g.n/50)))
	project.nested = []int{deptFirst + 5} // Department - Legal
	specs = append(specs, project, office)
	if count == 0 {
		return specs
	}
	if count <= len(specs) {
		specs = specs[:count]
		for k := range specs {
			kept := specs[k].nested[:0:0]
			for _, n := range specs[k].nested {
				if n < count {
					kept = append(kept, n)
				}
			}
			specs[k].nested = kept
		}
		return specs
	}
	for k := len(specs); k < count; k++ {
		r := newRNG(g.seed, streamGroup, uint64(k))
		specs = append(specs, groupSpec{
			name:        fmt.Sprintf("Team %03d", k),
			description: "A working team",
			users:       g.sample(r, 5+r.intn(56)),
		})
	}
	return specs
}

// sample draws up to k distinct users (never index 0 twice), sorted.
func (g *generator) sample(r *rng, k int) []int {
	if g.n == 0 {
		return nil
	}
	k = min(k, g.n)
	seen := make(map[int]bool, k)
	out := make([]int, 0, k)
	for tries := 0; len(out) < k && tries < 4*k+16; tries++ {
		i := r.intn(g.n)
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	return out
}
