using System.Reflection;

namespace Polly.PriorityRouting;

/// <summary>
/// Shallow copies of options objects, every field included: copying property by property drops whatever a later
/// version of an options class adds (a retry's <c>Randomizer</c> was lost that way).
/// </summary>
internal static class OptionsCopy
{
    private static readonly Func<object, object> CloneMemberwise =
        typeof(object).GetMethod("MemberwiseClone", BindingFlags.Instance | BindingFlags.NonPublic)!.CreateDelegate<Func<object, object>>();

    public static T Shallow<T>(T source)
        where T : class
        => (T)CloneMemberwise(source);
}
