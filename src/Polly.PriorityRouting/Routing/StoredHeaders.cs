using System.Net.Http.Headers;

namespace Polly.PriorityRouting;

/// <summary>Copies headers as the transport stored them, without parsing.</summary>
internal static class StoredHeaders
{
    /// <summary>
    /// Adds <paramref name="values"/> under <paramref name="name"/>: a single value (nearly every header) as its own
    /// string, with no array, boxing nor enumerator.
    /// </summary>
    public static void AddAsStored(this HttpHeaders headers, string name, HeaderStringValues values)
    {
        if (values.Count == 1)
        {
            headers.TryAddWithoutValidation(name, values.ToString());
        }
        else
        {
            headers.TryAddWithoutValidation(name, values);
        }
    }
}
