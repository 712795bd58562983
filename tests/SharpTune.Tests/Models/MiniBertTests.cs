using SharpTune.Models;
using SharpTune.Tests.Support;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>The embedded default model (models/mini-bert, bf16) loads completely and fills in masks sensibly.</summary>
public class MiniBertTests
{
    [Fact]
    public void LoadsEveryWeightAndPredictsAPlausibleMaskedWord()
    {
        using var scope = NewDisposeScope();
        using var model = AutoModel.FromPretrained(Path.Combine(RepoPaths.Models, "mini-bert"), out var report, dtype: ScalarType.Float32);
        Assert.IsType<BertForMaskedLM>(model);
        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.Equal(11_201_594, model.ParameterCount()); // as PROVENANCE.txt states (tied decoder counted once)

        // "[CLS] she went to the [MASK] . [SEP]" with the bert-base-uncased vocabulary.
        using var output = model.Forward(new ModelInputs(tensor(new long[] { 101, 2016, 2253, 2000, 1996, 103, 1012, 102 }, [1, 8])));
        var top = output.Logits![0, 5].topk(5).indexes.data<long>().ToArray();
        Assert.Contains(2380L, top); // "park"
    }
}
