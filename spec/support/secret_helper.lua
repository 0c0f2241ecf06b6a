-- busted's helper for every spec file (.busted): installs the secret watch
-- (spec/support/secret_watch.lua) for the run.
require("support.secret_watch").install(require("busted"))
