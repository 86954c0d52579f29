package dirsync

// MaxScopeRounds is maxScopeRounds, for the tests of package dirsync_test
// that drive a rebuild to its last round.
const MaxScopeRounds = maxScopeRounds
