namespace Polly.PriorityRouting;

/// <summary>
/// What the attempt loop does after no backend was left (see <see cref="RefillWaits.WhenNothingLeftAsync"/>): return
/// <see cref="Answer"/>, or select again for the same attempt. It also carries what the call has spent so far to its
/// next such decision (the default before the first): its wait, its one reselection.
/// </summary>
internal readonly struct NothingLeft(Outcome<HttpResponseMessage>? answer, TimeSpan waited, bool reselected, bool newRound, SlotTurn? turn)
{
    /// <summary>Gets the call's answer (the caller's cancellation, or the exhausted answer), or <see langword="null"/> when the loop selects again.</summary>
    public Outcome<HttpResponseMessage>? Answer { get; } = answer;

    /// <summary>Gets how long the call has waited for room so far: its next wait gets what is left of the bound.</summary>
    public TimeSpan Waited { get; } = waited;

    /// <summary>Gets a value indicating whether the call has spent its one selection again without a wait.</summary>
    public bool Reselected { get; } = reselected;

    /// <summary>Gets a value indicating whether the loop starts a new round after a wait: its next attempt fails over from no backend.</summary>
    public bool NewRound { get; } = newRound;

    /// <summary>Gets a foreground caller's turn at the slots it waited for (see <see cref="SlotTurn"/>): the loop ends it once its next admission is decided.</summary>
    public SlotTurn? Turn { get; } = turn;

    /// <summary>The call ends with <paramref name="answer"/>.</summary>
    public static NothingLeft Answered(Outcome<HttpResponseMessage> answer) => new(answer, TimeSpan.Zero, reselected: false, newRound: false, turn: null);

    /// <summary>The loop selects again at once, for the last time without a wait.</summary>
    public NothingLeft Reselect() => new(null, Waited, reselected: true, newRound: false, turn: null);

    /// <summary>The loop starts a new round after a wait of <paramref name="waited"/> that ended with <paramref name="turn"/>.</summary>
    public NothingLeft AfterWait(TimeSpan waited, SlotTurn? turn) => new(null, Waited + waited, Reselected, newRound: true, turn);
}
