/**
 * The authentication process: the only one that reads the users file. It answers the parent's
 * verify queries and nothing else; it never touches the network.
 */
import { FileAuthenticator } from '../security/authenticator.js';
import { IpcChannel } from './ipc.js';
import { AUTH_TO_PARENT, PARENT_TO_AUTH } from './roles.js';

const [usersFile, adminGroup] = process.argv.slice(2) as [string, string];
const auth = new FileAuthenticator(usersFile, adminGroup);
void AUTH_TO_PARENT;
new IpcChannel('parent', process, PARENT_TO_AUTH)
  .handle('verify-password', (body) => {
    const { user, password } = body as { user: string; password: string };
    return auth.password(user, password);
  })
  .handle('verify-token', (body) => auth.token((body as { token: string }).token))
  .handle('verify-certificate', (body) => auth.certificate((body as { user: string }).user));
process.title = 'fluctuat: auth';
// When the parent goes, so do we.
process.on('disconnect', () => process.exit(0));
