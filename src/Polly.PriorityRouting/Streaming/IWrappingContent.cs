namespace Polly.PriorityRouting;

/// <summary>
/// A response content of this library that wraps the one below it (affinity's sniffing of a created id): lets the body
/// watcher see through it to a body it watches already.
/// </summary>
internal interface IWrappingContent
{
    /// <summary>Gets the content this one reads from.</summary>
    HttpContent Inner { get; }
}
