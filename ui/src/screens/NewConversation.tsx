import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { t } from "../i18n";
import { Avatar, ErrorNote, Field, Modal, PresenceDot } from "../components/common";
import type { Problem } from "../validate";
import type { ConversationSummary, UserView } from "../types";

type Props = { me: string; onClose: () => void; onOpened: (conversation: ConversationSummary) => void };

/** Starts a direct conversation with one person, or creates a group. */
export function NewConversation({ me, onClose, onOpened }: Props) {
  const [mode, setMode] = useState<"direct" | "group">("direct");
  const [users, setUsers] = useState<UserView[] | null>(null);
  const [query, setQuery] = useState("");
  const [groupName, setGroupName] = useState("");
  const [members, setMembers] = useState<Set<string>>(new Set());
  const [problems, setProblems] = useState<{ name: Problem; members: Problem }>({ name: null, members: null });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    api
      .listUsers()
      .then((all) => setUsers(all.filter((u) => u.name !== me)))
      .catch((err) => {
        setUsers([]);
        setError(err);
      });
  }, [me]);

  const needle = query.trim().toLowerCase();
  const matchingUsers = (users ?? []).filter((u) => !needle || u.name.toLowerCase().includes(needle));

  const run = async (action: () => Promise<ConversationSummary>) => {
    setBusy(true);
    setError(null);
    try {
      onOpened(await action());
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  const toggle = (name: string) => {
    const next = new Set(members);
    if (next.has(name)) next.delete(name);
    else next.add(name);
    setMembers(next);
    if (problems.members) setProblems({ ...problems, members: null });
  };

  const createGroup = (e: Event) => {
    e.preventDefault();
    const found: { name: Problem; members: Problem } = {
      name: groupName.trim() ? null : { key: "validate.groupName" },
      members: members.size > 0 ? null : { key: "validate.groupMembers" },
    };
    setProblems(found);
    if (found.name || found.members) return;
    void run(() => api.createGroup(groupName.trim(), [...members]));
  };

  return (
    <Modal title={t("newConversation.title")} onClose={onClose} testId="new-conversation">
      <div class="tabs" role="tablist">
        <button type="button" role="tab" aria-selected={mode === "direct"} data-testid="new-direct-tab" onClick={() => setMode("direct")}>
          {t("newConversation.direct")}
        </button>
        <button type="button" role="tab" aria-selected={mode === "group"} data-testid="new-group-tab" onClick={() => setMode("group")}>
          {t("newConversation.group")}
        </button>
      </div>

      <form class="form" onSubmit={createGroup} noValidate>
        {mode === "group" && (
          <Field label={t("newConversation.groupName")} value={groupName} onInput={setGroupName} problem={problems.name} testId="group-name" autoFocus />
        )}
        <Field label={t("newConversation.search")} value={query} onInput={setQuery} testId="user-search" autoFocus={mode === "direct"} />
        <ul class="user-list" data-testid="user-list">
          {users === null && <li class="list-note">{t("common.loading")}</li>}
          {users !== null && matchingUsers.length === 0 && <li class="list-note">{t("newConversation.noUsers")}</li>}
          {matchingUsers.map((user) => (
            <li key={user.name}>
              {mode === "direct" ? (
                <button type="button" class="user-row" data-testid="user-item" data-user={user.name} disabled={busy} onClick={() => run(() => api.openDirect(user.name))}>
                  <UserLabel user={user} />
                </button>
              ) : (
                <label class="user-row">
                  <input type="checkbox" checked={members.has(user.name)} data-testid="member-checkbox" data-user={user.name} onChange={() => toggle(user.name)} />
                  <UserLabel user={user} />
                </label>
              )}
            </li>
          ))}
        </ul>
        {problems.members && mode === "group" && <span class="field-problem">{t(problems.members.key)}</span>}
        <ErrorNote error={error} />
        {mode === "group" && (
          <div class="actions">
            <button type="submit" class="primary" data-testid="create-group" disabled={busy}>
              {t("newConversation.create")}
            </button>
          </div>
        )}
      </form>
    </Modal>
  );
}

function UserLabel({ user }: { user: UserView }) {
  return (
    <>
      <Avatar name={user.name} size={28} />
      <span class="user-names">{user.name}</span>
      <PresenceDot presence={user.presence} />
    </>
  );
}
