// Scenarios made of steps that share state and run in order: after a failed step the rest
// are skipped (they would only fail for the same reason).

import {test} from "node:test"

/** A `step(name, body, {skip})` function for one scenario; `skip` applies to every step. */
export function scenario({timeout, skip = false}){
  let broken = false
  return function step(name, body, options = {}){
    test(name, {timeout, skip: options.skip ?? skip}, async t => {
      if(broken){ return t.skip("an earlier step failed") }
      try {
        await body(t)
      } catch(error){
        broken = true
        throw error
      }
    })
  }
}
