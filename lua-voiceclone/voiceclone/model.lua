--- voiceclone.Model: a trained voice as ListModels describes it. Its fields
-- are the service's own data (model.name, model.createdAt: C, record.c).
local core = require "voiceclone.core"

local Model = core.Model         -- the method table of voiceclone.Model

--- A copy of the model's data as the service sent it.
Model.totable = core.totable

return Model
