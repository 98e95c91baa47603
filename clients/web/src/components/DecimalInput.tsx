/**
 * The one input for a decimal (a price, a quantity, a stop level): typed as text, kept as the
 * string the user typed (never a JavaScript number), with the server's field violation shown.
 */

type Props = {
  /** The visible label's `htmlFor` target; without it, `label` names the input (aria-label). */
  id?: string;
  label?: string;
  value: string;
  onChange: (value: string) => void;
  /** The field violation the server reported for this field, if any. */
  error?: string | undefined;
  placeholder?: string;
  disabled?: boolean;
};

export function DecimalInput({ id, label, value, onChange, error, placeholder, disabled }: Props) {
  const errorId = id === undefined ? undefined : `${id}-err`;
  return (
    <>
      <input
        id={id}
        aria-label={id === undefined ? label : undefined}
        inputMode="decimal"
        autoComplete="off"
        value={value}
        placeholder={placeholder}
        disabled={disabled}
        onChange={(e) => onChange(e.target.value)}
        aria-invalid={error !== undefined}
        aria-describedby={error !== undefined ? errorId : undefined}
        title={id === undefined ? (error ?? "") : undefined}
      />
      {error !== undefined && errorId !== undefined && (
        <span className="field-error" id={errorId}>
          {error}
        </span>
      )}
    </>
  );
}

/** A labelled ticket field holding a `DecimalInput`. */
export function DecimalField(props: Props & { id: string; label: string }) {
  return (
    <div className="field">
      <label htmlFor={props.id}>{props.label}</label>
      <DecimalInput {...props} />
    </div>
  );
}

/** The two buttons of an inline edit in a blotter row. */
export function SaveOrDiscard({ onDiscard }: { onDiscard: () => void }) {
  return (
    <>
      <button type="submit" className="small primary">Save</button>
      <button type="button" className="small ghost" onClick={onDiscard}>Discard</button>
    </>
  );
}
