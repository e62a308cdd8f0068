// hearth's web client: the first page is signing in (signin.js) or an emailed link
// (account.js); the signed-in client (client.js) loads after, so a new visitor's first load
// stays small. Plain DOM, no framework: every piece of data reaches the page as text (dom.js),
// never as HTML.

import {Session, hasStoredSession} from "./api.js"
import {account, pages, showAuth, startClient} from "./signin.js"

const EMAILED_LINK = /^#\/[a-z-]+\/[\w-]+$/
/** An invite link, `/#/invite/<code>`: the sign-up form with the code filled in. */
const INVITE_LINK = /^#\/invite\/([\w-]{1,200})$/

async function boot(){
  const invited = location.hash.match(INVITE_LINK)
  if(invited){
    // The code is a secret: out of the address bar (and the history) at once.
    history.replaceState(null, "", "/")
    if(!hasStoredSession()){ return showAuth("", {invite: invited[1]}) }
  }
  if(EMAILED_LINK.test(location.hash)){ return (await account()).openLink(location.hash, pages) }
  // A device that kept a session fetches the client while the session is resumed.
  if(hasStoredSession()){ import("./client.js").catch(() => {}) }
  let session = null
  try {
    session = await Session.resume()
  } catch(error){
    return showAuth(error.message)
  }
  if(!session){ return showAuth() }
  await startClient(session)
}

// A link opened in a tab that shows hearth already only changes the fragment.
addEventListener("hashchange", () => { if(EMAILED_LINK.test(location.hash)){ location.reload() } })
boot()
