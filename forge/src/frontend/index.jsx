// The Strongroom settings page (UI Kit). Every call goes through invokeRemote to Strongroom's
// /forge/ui/api/v1/... which answers exactly like /api/v1/... for this workspace.
import React, { useCallback, useEffect, useState } from 'react';
import ForgeReconciler, {
  Button, DynamicTable, Heading, Inline, Lozenge, SectionMessage, Stack, Text, Toggle,
} from '@forge/react';
import { invokeRemote } from '@forge/bridge';

const call = async (path, method = 'GET', body) => {
  const response = await invokeRemote({ path: `/forge/ui/api/v1/${path}`, method, body });
  if (response.status >= 400) {
    throw new Error(response.body?.error?.message || `Strongroom answered ${response.status}`);
  }
  return response.body;
};

const STATE = { ok: 'success', failing: 'removed', syncing: 'inprogress', pending: 'default' };

const App = () => {
  const [installation, setInstallation] = useState(null);
  const [repositories, setRepositories] = useState([]);
  const [message, setMessage] = useState(null);

  const load = useCallback(async () => {
    try {
      setInstallation(await call('installation'));
      setRepositories((await call('repositories?pagelen=100')).values);
    } catch (error) {
      setMessage({ appearance: 'error', text: error.message });
    }
  }, []);
  useEffect(() => { load(); }, [load]);

  const backUpNow = async () => {
    try {
      const { job } = await call('backups', 'POST', {});
      setMessage({ appearance: 'information', text: `Backup started (job ${job.id}).` });
    } catch (error) {
      setMessage({ appearance: 'error', text: error.message });
    }
  };
  const toggle = async (repo) => {
    try {
      await call(`repositories/${encodeURIComponent(repo.uuid)}/scope`, 'PUT', { in_scope: !repo.in_scope });
      await load();
    } catch (error) {
      setMessage({ appearance: 'error', text: error.message });
    }
  };

  const rows = repositories.map((repo) => ({
    key: repo.uuid,
    cells: [
      { key: 'name', content: repo.full_name },
      { key: 'state', content: <Lozenge appearance={STATE[repo.state] || 'default'}>{repo.deleted_upstream ? 'deleted on Bitbucket' : repo.state}</Lozenge> },
      { key: 'last', content: repo.last_backup_at || 'never' },
      { key: 'snapshots', content: String(repo.snapshot_count) },
      { key: 'scope', content: <Toggle isChecked={repo.in_scope} onChange={() => toggle(repo)} label="back up" /> },
    ],
  }));

  return (
    <Stack space="space.200">
      <Heading as="h2">Strongroom backups</Heading>
      {message && <SectionMessage appearance={message.appearance}><Text>{message.text}</Text></SectionMessage>}
      {installation && (
        <Inline space="space.100">
          <Text>Status: </Text><Lozenge>{installation.status}</Lozenge>
          <Text>Scope: {installation.scope_mode}</Text>
        </Inline>
      )}
      <Text>Forge delivers events up to a few minutes late; Strongroom also sweeps every repository daily.</Text>
      <Button onClick={backUpNow}>Back up now</Button>
      <DynamicTable
        head={{ cells: [{ key: 'name', content: 'Repository' }, { key: 'state', content: 'State' },
          { key: 'last', content: 'Last backup' }, { key: 'snapshots', content: 'Snapshots' },
          { key: 'scope', content: 'In scope' }] }}
        rows={rows}
        emptyView="No repositories yet: the first backup is still listing them."
      />
    </Stack>
  );
};

ForgeReconciler.render(<React.StrictMode><App /></React.StrictMode>);
